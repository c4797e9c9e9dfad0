# Sourced by .ci/run: a Python venv with the real clients the black-box tests
# drive (tritonclient, schemathesis); exports VIGIL_TEST_PYTHON, its python.

start_python() {
    if [ -n "${VIGIL_TEST_PYTHON:-}" ]; then
        echo "python: using VIGIL_TEST_PYTHON from the environment"
        return
    fi
    local venv="${VIGIL_CI_VENV:-/tmp/vigil-ci-venv}"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || { apt_install python3-venv && python3 -m venv "$venv"; }
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r .ci/requirements.txt
    export VIGIL_TEST_PYTHON="$venv/bin/python"
    echo "python: $("$VIGIL_TEST_PYTHON" --version) with $(grep -cv '^#' .ci/requirements.txt) packages from .ci/requirements.txt"
}
