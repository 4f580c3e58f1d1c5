# Headless Chromium and its WebDriver from the Debian packages (no browser download is possible or
# wanted). Sourced by scripts/test-services.sh. Installs `chromium` and `chromium-driver` with
# apt-get when they are missing, then exports CHROMIUM_BIN and CHROMEDRIVER_BIN; tests marked
# `browser` (the dev phone page, driven by Selenium) need them. Nothing keeps running: each test
# starts and stops its own browser.
SERVICE_MARKER=browser
SERVICE_TITLE="Headless Chromium"
SERVICE_HINT="Install the Debian packages chromium and chromium-driver (apt-get install chromium chromium-driver)."

_browser_find() {
  CHROMIUM_BIN=$(command -v chromium || command -v chromium-browser || true)
  CHROMEDRIVER_BIN=$(command -v chromedriver || true)
  [ -z "$CHROMEDRIVER_BIN" ] && [ -x /usr/lib/chromium/chromedriver ] && CHROMEDRIVER_BIN=/usr/lib/chromium/chromedriver
  [ -n "$CHROMIUM_BIN" ] && [ -n "$CHROMEDRIVER_BIN" ]
}

service_start() {
  if ! _browser_find; then
    command -v apt-get >/dev/null 2>&1 || { echo "chromium not found and no apt-get to install it"; return 1; }
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo -n"
    echo "installing chromium and chromium-driver (apt-get)"
    $sudo apt-get update -qq >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { echo "apt-get could not install chromium chromium-driver"; return 1; }
    _browser_find || { echo "chromium installed but not found on PATH"; return 1; }
  fi
  export CHROMIUM_BIN CHROMEDRIVER_BIN
  echo "Chromium at $CHROMIUM_BIN, driver at $CHROMEDRIVER_BIN"
}
