//! Parsing of the compact flags of `vigil metrics`: `--dim K=V`,
//! `--metric id=NS/NAME:STAT:PERIOD[:K=V,...]`, `--expr id=EXPRESSION`,
//! number lists, and times (RFC 3339 or Unix milliseconds).

use vigil_metrics::Dimensions;
use vigil_metrics::math::{MetricDataQuery, MetricStat};

/// `K=V` of `--dim`: a non-empty name, any value (which may hold `=`).
pub fn dim(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

/// `--dim` pairs as a dimension set; a name given twice is an error.
pub fn dimensions(pairs: &[(String, String)]) -> Result<Dimensions, String> {
    let mut out = Dimensions::new();
    for (name, value) in pairs {
        if out.insert(name.clone(), value.clone()).is_some() {
            return Err(format!("--dim: `{name}` is given twice"));
        }
    }
    Ok(out)
}

/// `id=EXPRESSION` of `--expr`.
pub fn expr(text: &str) -> Result<MetricDataQuery, String> {
    let (id, expression) = id_and_rest(text, "ID=EXPRESSION")?;
    if expression.trim().is_empty() {
        return Err(format!(
            "expected ID=EXPRESSION, got `{text}`: the expression is empty"
        ));
    }
    Ok(MetricDataQuery {
        id,
        expression: Some(expression.to_owned()),
        metric_stat: None,
        return_data: true,
        label: None,
    })
}

/// `id=NS/NAME:STAT:PERIOD[:K=V,...]` of `--metric`. The namespace may hold
/// `/` (`Vigil/Gateway/LatencyMs`: the name is after the last one); a `:`
/// inside parentheses belongs to the statistic (`TM(10%:90%)`); the
/// dimensions are the rest, comma-separated.
pub fn metric(text: &str) -> Result<MetricDataQuery, String> {
    const FORM: &str = "ID=NAMESPACE/NAME:STAT:PERIOD[:K=V,...]";
    let (id, rest) = id_and_rest(text, FORM)?;
    let parts = split_top_level(rest, 4);
    let [path, stat, period, dims @ ..] = parts.as_slice() else {
        return Err(format!(
            "expected {FORM}, got `{text}`: the statistic or the period is missing"
        ));
    };
    let Some((namespace, name)) = path.rsplit_once('/') else {
        return Err(format!(
            "expected {FORM}, got `{text}`: `{path}` has no `/` between namespace and name"
        ));
    };
    if namespace.is_empty() || name.is_empty() {
        return Err(format!(
            "expected {FORM}, got `{text}`: empty namespace or name in `{path}`"
        ));
    }
    if stat.is_empty() {
        return Err(format!(
            "expected {FORM}, got `{text}`: the statistic is empty"
        ));
    }
    let period: u32 = period.parse().map_err(|_| {
        format!("expected {FORM}, got `{text}`: the period `{period}` is not whole seconds")
    })?;
    let mut dimensions = Dimensions::new();
    if let Some(dims) = dims.first() {
        for pair in dims.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = dim(pair).map_err(|e| format!("`{text}`: dimension {e}"))?;
            if dimensions.insert(k.clone(), v).is_some() {
                return Err(format!("`{text}`: dimension `{k}` is given twice"));
            }
        }
    }
    Ok(MetricDataQuery {
        id,
        expression: None,
        metric_stat: Some(MetricStat {
            namespace: namespace.to_owned(),
            metric_name: name.to_owned(),
            dimensions,
            period,
            stat: (*stat).to_owned(),
            unit: None,
        }),
        return_data: true,
        label: None,
    })
}

fn id_and_rest<'a>(text: &'a str, form: &str) -> Result<(String, &'a str), String> {
    match text.split_once('=') {
        Some((id, rest)) if !id.is_empty() => Ok((id.to_owned(), rest)),
        _ => Err(format!("expected {form}, got `{text}`: no `ID=` in front")),
    }
}

/// Splits on `:` outside parentheses into at most `max` parts (the last
/// keeps the rest, colons included).
fn split_top_level(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth <= 0 && parts.len() + 1 < max => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A comma-separated list of numbers (`--values`, `--counts`, `--stats`).
pub fn numbers(flag: &str, text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<f64>()
                .map_err(|_| format!("{flag}: `{part}` is not a number"))
        })
        .collect()
}

/// A time flag as JSON: Unix milliseconds as a number, anything else as
/// text for the server to read as RFC 3339 (its error names the field).
pub fn time(text: &str) -> serde_json::Value {
    match text.parse::<i64>() {
        Ok(ms) => serde_json::Value::from(ms),
        Err(_) => serde_json::Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_split_on_the_first_equals_sign() {
        assert_eq!(dim("model=fraud"), Ok(("model".into(), "fraud".into())));
        assert_eq!(dim("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert_eq!(dim("empty="), Ok(("empty".into(), String::new())));
        assert!(dim("=v").is_err());
        assert!(dim("novalue").is_err());
        let twice = [("a".into(), "1".into()), ("a".into(), "2".into())];
        assert!(dimensions(&twice).is_err());
    }

    #[test]
    fn a_metric_flag_names_namespace_name_stat_period_and_dimensions() {
        let q = metric("lat=Vigil/Gateway/LatencyMs:p99:60:model=fraud,version=2")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.id, "lat");
        let stat = q.metric_stat.unwrap_or_else(|| panic!("no metric_stat"));
        assert_eq!(stat.namespace, "Vigil/Gateway");
        assert_eq!(stat.metric_name, "LatencyMs");
        assert_eq!(stat.stat, "p99");
        assert_eq!(stat.period, 60);
        assert_eq!(
            stat.dimensions.get("model").map(String::as_str),
            Some("fraud")
        );
        assert_eq!(
            stat.dimensions.get("version").map(String::as_str),
            Some("2")
        );
    }

    #[test]
    fn a_colon_inside_a_statistic_and_a_dimension_value_is_kept() {
        let q =
            metric("t=App/Lat:TM(10%:90%):300:url=http://x:1/").unwrap_or_else(|e| panic!("{e}"));
        let stat = q.metric_stat.unwrap_or_else(|| panic!("no metric_stat"));
        assert_eq!(stat.stat, "TM(10%:90%)");
        assert_eq!(stat.period, 300);
        assert_eq!(
            stat.dimensions.get("url").map(String::as_str),
            Some("http://x:1/")
        );
    }

    #[test]
    fn malformed_metric_flags_say_what_is_missing() {
        let no_id = metric("App/Lat:Sum:60").err().unwrap_or_default();
        assert!(no_id.contains("ID="), "{no_id}");
        let no_period = metric("a=App/Lat:Sum").err().unwrap_or_default();
        assert!(no_period.contains("period is missing"), "{no_period}");
        let no_slash = metric("a=Lat:Sum:60").err().unwrap_or_default();
        assert!(no_slash.contains("no `/`"), "{no_slash}");
        let bad_period = metric("a=App/Lat:Sum:1m").err().unwrap_or_default();
        assert!(bad_period.contains("`1m`"), "{bad_period}");
        assert!(metric("a=App/Lat:Sum:60:nodim").is_err());
    }

    #[test]
    fn exprs_and_numbers_and_times() {
        let e = expr("rate=100*e/i").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.expression.as_deref(), Some("100*e/i"));
        assert!(expr("rate=").is_err());
        assert_eq!(numbers("--values", "1, 2.5,3"), Ok(vec![1.0, 2.5, 3.0]));
        assert!(numbers("--values", "1,x").is_err());
        assert_eq!(
            time("1700000000000"),
            serde_json::json!(1_700_000_000_000i64)
        );
        assert_eq!(
            time("2026-01-01T00:00:00Z"),
            serde_json::json!("2026-01-01T00:00:00Z")
        );
    }
}
