#!/usr/bin/env bash
# The browser suite drives Debian's Chromium (playwright-core downloads no browser) and needs CJK
# fonts so Chinese renders as glyphs. Installs both when missing and we may (root + apt-get);
# otherwise says what to install and lets the suite report the missing browser itself.
set -u
if [ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] && fc-list 2>/dev/null | grep -qi 'Noto Sans CJK'; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium and fonts-noto-cjk for the browser suite…" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends chromium fonts-noto-cjk >/dev/null
  exit $?
fi
echo "the browser suite needs Chromium: apt-get install chromium fonts-noto-cjk (or set CHROMIUM_PATH)" >&2
exit 0
