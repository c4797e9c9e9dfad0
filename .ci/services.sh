# Sourced by .ci/run: install and start the servers the tests talk to.
# Each service exports the variable its tests read (VIGIL_TEST_POSTGRES_URL,
# VIGIL_TEST_REDIS_URL, ...). Nothing is needed yet for the core crates.

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

start_services() {
    :
}
