# Sourced by .ci/run: Debian's Chromium and playwright-core (pinned in
# tests/browser/package-lock.json) for the console's browser test
# (crates/vigil/tests/console_browser.rs); exports VIGIL_TEST_BROWSER, the
# directory holding console.mjs and its node_modules.

start_browser() {
    if [ -n "${VIGIL_TEST_BROWSER:-}" ]; then
        echo "browser: using VIGIL_TEST_BROWSER from the environment"
        return
    fi
    apt_install chromium
    # Node.js 20 or later with npm: Debian's packages when there is none
    # (a NodeSource nodejs already brings npm).
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    local dir
    dir="$(pwd)/tests/browser"
    # npm ci: exactly the lock file's versions and checksums; node_modules
    # is gitignored.
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    export VIGIL_TEST_BROWSER="$dir"
    echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?'), node $(node --version), playwright-core $(node -p "require('$dir/node_modules/playwright-core/package.json').version")"
}
