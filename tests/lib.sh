# Set-up shared by the shell tests, sourced first thing:
#   . "$(dirname "$0")/lib.sh" "$@"      (arguments: RLFR_BINARY [SOURCE_DIR])
# Sets RLFR (the binary, absolute path), SRC (the source tree, absolute, when
# given) and work (a temporary directory, removed at exit, made the current
# directory); failures counts the calls of `fail MSG`, which prints
# "FAIL: MSG". `test_finish NAME` ends the test: exit 1 with the count when
# anything failed, else "NAME: ok".
RLFR=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
if [ $# -ge 2 ]; then SRC=$(cd "$2" && pwd); fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
test_finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$1: $failures failure(s)"
        exit 1
    fi
    echo "$1: ok"
}
