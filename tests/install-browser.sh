#!/bin/sh
# System packages for the browser test (Chromium, CJK and emoji fonts), installed where the machine
# allows it: as root with apt-get. Elsewhere the browser test is skipped and says why.
if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "noto.*cjk" && fc-list 2>/dev/null | grep -qi "color emoji"; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium, fonts-noto-cjk and fonts-noto-color-emoji for the browser test ..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-noto-color-emoji; } \
    >/dev/null 2>&1 || echo "warning: apt-get could not install chromium; the browser test will be skipped"
else
  echo "note: not root or no apt-get, so Chromium is not installed; the browser test will be skipped"
fi
exit 0
