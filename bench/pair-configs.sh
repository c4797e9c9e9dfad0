# shellcheck shell=bash
# The two server configs a PAIR compares, written from bench/run.sh's
# vigil.toml (so both sides serve on its port, 18091): sourced by
# bench/pairs.sh and bench/cpu.sh. Sets OFF_NAME, OFF_CONFIG, ON_NAME and
# ON_CONFIG; returns 1 when $1 is no such pair.
#
#   logs        the log store off vs on (both with the inference log on):
#               the cost of Vigil's own groups /vigil/access and /vigil/inference
#   traces      tracing off vs on with the Default rule (1/s + 5%)
#   traces-all  tracing off vs on with every request sampled
#   metrics     the telemetry spine's metrics off vs on
pair_configs() { # pair work-dir
  local pair=$1 work=$2 section
  case $pair in
    logs) section=logs ;;
    traces | traces-all) section=traces ;;
    metrics) section=metrics ;;
    *) return 1 ;;
  esac
  OFF_NAME="$section off" ON_NAME="$section on"
  OFF_CONFIG=$work/vigil-no$section.toml ON_CONFIG=$work/vigil.toml
  { cat "$work/vigil.toml"; printf '\n[%s]\nenabled = false\n' "$section"; } >"$OFF_CONFIG"
  if [[ $pair == traces-all ]]; then
    ON_CONFIG=$work/vigil-alltraces.toml
    { cat "$work/vigil.toml"
      printf '\n[[traces.sampling_rules]]\nname = "Default"\nreservoir = 0\nfixed_rate = 1.0\n'
    } >"$ON_CONFIG"
  fi
}
