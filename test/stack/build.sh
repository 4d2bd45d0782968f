#!/usr/bin/env bash
# Builds the real components of the local test stack, once, into a cache keyed by version:
#   build.sh [all|kube|etcd|helm|kafka|promtool|check]...
# kube   kube-apiserver, kube-controller-manager and kubectl from the k8s.io/kubernetes module
# etcd   etcd from go.etcd.io/etcd/server/v3
# helm   helm 3 with go install
# kafka  Apache Kafka's jars from Maven Central
# promtool  Prometheus's promtool, for checking /metrics and the dashboard's PromQL
# A component whose cache entry is complete is not rebuilt. The cache lives in
# ${TASKFLEET_CACHE:-$HOME/.cache/taskfleet}; delete an entry (or the whole folder) to rebuild it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${TASKFLEET_CACHE:-$HOME/.cache/taskfleet}
mkdir -p "$cache"

start=$SECONDS
log() { printf '[stack build %4ss] %s\n' $((SECONDS - start)) "$*" >&2; }
die() { printf 'stack build: %s\n' "$*" >&2; exit 1; }

need() { # need <command> <what to install>
  command -v "$1" >/dev/null 2>&1 || die "'$1' is missing: $2"
}

# Prints a line every 100 Go packages compiled, so a cold build (several minutes) shows it is alive.
go_progress() { # go_progress <label>
  awk -v label="$1" -v t0="$(date +%s)" '
    /^go: downloading / { next }
    / / { print; fflush(); next }   # compiler messages; package paths have no spaces
    { n++; if (n % 100 == 0) { printf "[stack build] %s: %d packages compiled (%ds)\n", label, n, systime() - t0; fflush() } }
    END { printf "[stack build] %s: %d packages compiled (%ds)\n", label, n, systime() - t0 }' >&2
}

# Runs a build into <dir>.partial and renames it to <dir> only when it succeeds,
# so an interrupted build never leaves a cache entry that looks complete.
build_into() { # build_into <dir> <function>
  local dir=$1 fn=$2
  if [[ -f $dir/.complete ]]; then return 0; fi
  rm -rf "$dir.partial"
  mkdir -p "$dir.partial"
  "$fn" "$dir.partial"
  touch "$dir.partial/.complete"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
}

go_env_check() {
  need go "install Go 1.25 or newer (https://go.dev/dl; Debian's golang-go is too old for Kubernetes)"
  local v
  v=$(go env GOVERSION | sed 's/^go//')
  case $v in
    1.2[5-9]* | 1.[3-9]* | [2-9].*) ;;
    *) die "Go $v is too old to build Kubernetes ${KUBE_VERSION}: install Go 1.25 or newer" ;;
  esac
}

build_kube() { # build_kube <out>
  local out=$1 work=$1/src
  go_env_check
  mkdir -p "$work" "$out/bin"
  log "kube ${KUBE_VERSION}: downloading the k8s.io/kubernetes module"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
  [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@${KUBE_VERSION} from the Go module proxy"
  # k8s.io/kubernetes replaces each staging module k8s.io/<m> with ./staging/src/k8s.io/<m>.
  # Replace directives of a dependency are ignored, so the wrapper module points each one at its
  # published v0.<minor>.<patch> instead.
  local staging=v0.${KUBE_VERSION#v1.}
  {
    echo "module taskfleet.dev/stack/kube"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/^\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "replace ("
    awk '/^replace \(/{r=1; next} r && /^\)/{r=0} r && $1 ~ /^k8s\.io\// && $3 ~ /^\.\/staging/ {print "\t" $1 " => " $1 " '"$staging"'"}' "$gomod"
    echo ")"
  } >"$work/go.mod"
  grep -q 'k8s.io/api => k8s.io/api' "$work/go.mod" || die "found no staging replace block in $gomod"
  # /version and `kubectl version` report what these say; unset, they report v0.0.0.
  local major=1 minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=${KUBE_VERSION} -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  log "kube ${KUBE_VERSION}: compiling kube-apiserver, kube-controller-manager and kubectl (cold: about 7 minutes on 2 cores)"
  (cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -v -trimpath -ldflags "$ldflags" -o "$out/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl 2>&1) | go_progress "kube"
  [[ -x $out/bin/kube-apiserver && -x $out/bin/kube-controller-manager && -x $out/bin/kubectl ]] ||
    die "the Kubernetes build did not produce its binaries (see the errors above)"
  rm -rf "$work"
}

build_etcd() { # build_etcd <out>
  local out=$1 work=$1/src
  go_env_check
  mkdir -p "$work" "$out/bin"
  cat >"$work/go.mod" <<EOF2
module taskfleet.dev/stack/etcd

go 1.24

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
EOF2
  cat >"$work/main.go" <<'EOF2'
// etcd, built from its server module: the same entry point as the etcd binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF2
  log "etcd ${ETCD_VERSION}: compiling"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy 2>&1 &&
    CGO_ENABLED=0 go build -v -trimpath -ldflags "-s -w" -o "$out/bin/etcd" . 2>&1) | go_progress "etcd"
  [[ -x $out/bin/etcd ]] || die "the etcd build did not produce its binary (see the errors above)"
  rm -rf "$work"
}

build_helm() { # build_helm <out>
  local out=$1
  go_env_check
  mkdir -p "$out/bin"
  log "helm ${HELM_VERSION}: compiling"
  (GOBIN="$out/bin" CGO_ENABLED=0 go install -v -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" 2>&1) | go_progress "helm"
  [[ -x $out/bin/helm ]] || die "the Helm build did not produce its binary (see the errors above)"
}

build_promtool() { # build_promtool <out>
  local out=$1
  go_env_check
  mkdir -p "$out/bin"
  log "promtool ${PROMTOOL_VERSION}: compiling (without service discovery, which it does not need here)"
  (GOBIN="$out/bin" CGO_ENABLED=0 go install -v -trimpath -tags remove_all_sd -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@${PROMTOOL_VERSION}" 2>&1) | go_progress "promtool"
  [[ -x $out/bin/promtool ]] || die "the promtool build did not produce its binary (see the errors above)"
}

build_kafka() { # build_kafka <out>
  local out=$1
  need java "install a Java 17 runtime (apt-get install openjdk-17-jre-headless)"
  need mvn "install Maven (apt-get install maven)"
  log "kafka ${KAFKA_VERSION}: fetching jars from Maven Central"
  mvn -B -q -Dstyle.color=never -f "$here/kafka/pom.xml" -Dkafka.version="${KAFKA_VERSION}" -Dslf4j.version="${SLF4J_VERSION}" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out/libs" 2>&1 |
    sed 's/\x1b\[[0-9;]*m//g' >&2 || die "Maven could not fetch Kafka ${KAFKA_VERSION} (see the errors above)"
  ls "$out"/libs/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven fetched no kafka_2.13 jar"
}

component() {
  case $1 in
    kube) build_into "$cache/kube-${KUBE_VERSION}" build_kube ;;
    etcd) build_into "$cache/etcd-${ETCD_VERSION}" build_etcd ;;
    helm) build_into "$cache/helm-${HELM_VERSION}" build_helm ;;
    kafka) build_into "$cache/kafka-${KAFKA_VERSION}" build_kafka ;;
    promtool) build_into "$cache/promtool-${PROMTOOL_VERSION}" build_promtool ;;
    all) for c in etcd helm kafka kube promtool; do component "$c"; done ;;
    *) die "unknown component '$1': use all, kube, etcd, helm, kafka or promtool" ;;
  esac
}

for c in "${@:-all}"; do component "$c"; done
log "ready in $cache"
