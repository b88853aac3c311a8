#!/usr/bin/env bash
# Install Debian's Chromium for the status-page browser test (tests/test_status_page.py),
# which starts it headless itself on pages served on 127.0.0.1. Called by `make test-deps` (`make test`).
exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh" chromium /usr/bin/chromium "about 100 MB the first time"
