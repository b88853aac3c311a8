#!/usr/bin/env bash
# Install redis-server (Debian package) for the Redis cache-backend tests and for trying
# the Redis backend locally. The tests start their own server on 127.0.0.1 with
# persistence off (tests/redis_server.py); this script never starts a service.
# Called by `make test-deps` (`make test`).
exec bash "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh" redis-server redis-server
