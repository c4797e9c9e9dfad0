//! The web console's files, embedded in the binary with `include_bytes!`
//! so that `cargo build` needs neither npm nor the network and the console
//! works offline. The server (`vigil-server`'s `console` module) serves
//! them at `/` and `/console/{file}`; this crate only holds them.
//!
//! `assets/vendor/` holds uPlot, a third-party file (MIT, its licence
//! beside it), put there by `scripts/fetch-uplot.sh` at a pinned version
//! whose checksum the script checks. Everything else is Vigil's own:
//! plain ES modules, no build step.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its name under `/console/` (`index.html` is also `/`).
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $path:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../assets/", $path)),
        }
    };
}

/// The page (served at `/`).
pub const INDEX: Asset = asset!("index.html", "index.html", "text/html; charset=utf-8");

/// Every file of the console, the page first.
pub const ASSETS: &[Asset] = &[
    INDEX,
    asset!("app.js", "app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "api.js", "text/javascript; charset=utf-8"),
    asset!("widgets.js", "widgets.js", "text/javascript; charset=utf-8"),
    asset!("pages.js", "pages.js", "text/javascript; charset=utf-8"),
    asset!("time.js", "time.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "style.css", "text/css; charset=utf-8"),
    asset!(
        "uPlot.iife.min.js",
        "vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "uPlot.min.css",
        "vendor/uPlot.min.css",
        "text/css; charset=utf-8"
    ),
    asset!(
        "uPlot.LICENSE",
        "vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8"
    ),
];

/// The file named `name` under `/console/`.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn gzipped_len(bytes: &[u8]) -> usize {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).expect("in memory");
        encoder.finish().expect("in memory").len()
    }

    /// The budget: the whole page at most 200 KB gzipped.
    #[test]
    fn the_page_weighs_at_most_200_kb_gzipped() {
        let total: usize = ASSETS.iter().map(|a| gzipped_len(a.bytes)).sum();
        assert!(total <= 200 * 1024, "{total} bytes gzipped");
        // uPlot is the largest part; the budget is not met by an empty file.
        assert!(
            total > 20 * 1024,
            "{total} bytes gzipped: a file is missing"
        );
    }

    #[test]
    fn every_module_the_page_loads_is_embedded() {
        let page = std::str::from_utf8(INDEX.bytes).expect("utf-8");
        for file in ASSETS {
            let text = std::str::from_utf8(file.bytes).expect("utf-8");
            // Imports between modules are relative (`./api.js`).
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let name = line
                    .rsplit_once("'./")
                    .and_then(|(_, rest)| rest.split_once('\''))
                    .map(|(name, _)| name)
                    .unwrap_or_else(|| panic!("{}: unexpected import {line}", file.name));
                assert!(asset(name).is_some(), "{} imports {name}", file.name);
            }
        }
        for name in ["app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css"] {
            assert!(page.contains(&format!("/console/{name}")), "{name}");
        }
        // No inline script or style: the console's CSP forbids them.
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains(" style="), "inline style attribute");
        // Every script tag loads a file and has no body.
        for script in page.split("<script").skip(1) {
            let (tag, rest) = script.split_once('>').expect("a closed tag");
            assert!(
                tag.contains(" src=\"/console/"),
                "inline script: <script{tag}>"
            );
            assert!(rest.starts_with("</script>"), "a script with a body");
        }
    }

    #[test]
    fn the_console_never_parses_data_as_html() {
        for asset in ASSETS
            .iter()
            .filter(|a| a.name.ends_with(".js") && !a.name.starts_with("uPlot"))
        {
            let text = std::str::from_utf8(asset.bytes).expect("utf-8");
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", asset.name);
            }
        }
    }
}
