#!/usr/bin/env bash
# Checks deploy/ offline, as CI does (scripts/test.sh):
# - every manifest the kustomization applies, against the Kubernetes API
#   schemas with kubernetes-validate (PyPI; it ships the schemas), strict: an
#   unknown field is an error, as the API server's strict field validation
#   would make it; and no manifest here left out of the kustomization;
# - the Dockerfile, with hadolint;
# - grafana-dashboard.json parses as JSON (that its queries use only
#   metrics the agent serves is route-agent/tests/admin.rs's
#   every_metric_of_the_grafana_dashboard_is_in_a_scrape).
# The tools come from scripts/install-deps.sh (a virtualenv, PODROUTE_VENV).
#
# KUBERNETES_VERSION (default 1.34, the API version route-agent's
# Kubernetes types follow) picks the schemas.
set -euo pipefail
cd "$(dirname "$0")"
venv="${PODROUTE_VENV:-$HOME/.cache/podroute/venv}"
version="${KUBERNETES_VERSION:-1.34}"

# The `resources:` list of kustomization.yaml, one `  - FILE` per line.
mapfile -t resources < <(awk '
    /^resources:/ { on = 1; next }
    on && /^  - / { print $2; next }
    on && /^[^ #]/ { on = 0 }' kustomization.yaml)
if [ "${#resources[@]}" -eq 0 ]; then
    echo "deploy/validate.sh: no resources in deploy/kustomization.yaml" >&2
    exit 1
fi
for f in *.yaml; do
    [ "$f" = kustomization.yaml ] && continue
    if ! printf '%s\n' "${resources[@]}" | grep -qxF "$f"; then
        echo "deploy/validate.sh: deploy/$f is not in kustomization.yaml's resources" >&2
        exit 1
    fi
done

"$venv/bin/kubernetes-validate" --strict -k "$version" "${resources[@]}"
"$venv/bin/hadolint" Dockerfile
"$venv/bin/python" -m json.tool grafana-dashboard.json > /dev/null
echo "deploy/: ${#resources[@]} manifest files valid for Kubernetes $version; Dockerfile lint clean; Grafana dashboard is JSON"
