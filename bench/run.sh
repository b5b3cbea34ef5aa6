#!/usr/bin/env bash
# keystone-proxy against nginx (the same job: a fixed token injected with
# proxy_set_header, keep-alive to the upstream) and against the upstream
# alone, measured in one run. See README, "Performance".
#
#   bench/run.sh            # full run (≈ 5 minutes)
#   SMOKE=1 bench/run.sh    # 2-second cases, one round: keeps the script working
#   CASES=ab bench/run.sh   # only some cases (letters as in the README's table)
#   CASES=h bench/run.sh    # instructions per request under callgrind (repeatable)
#   CASES=h IR_ONLY="proxy-json" bench/run.sh   # only some of (h)'s counts
#
# Proxy, nginx and the upstream stand-in share CPU 0; the load generator
# (wrk) runs on CPU 1. Case (i) pins nothing: the proxy's workers against
# nginx's 2 worker processes on both CPUs. Cases run interleaved (direct, nginx, proxy, direct,
# …) ROUNDS times and the table shows medians; a round is run again if the
# machine was busy with something else (load average above LOAD_LIMIT).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=${SMOKE:-0}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
LOAD_LIMIT=${LOAD_LIMIT:-2.5}
CASES=${CASES:-abcdefghi}
if [ "$SMOKE" = 1 ]; then DURATION=2; ROUNDS=1; fi
has() { [[ $CASES == *$1* ]]; }

K=127.0.0.1:18500   # fake Keystone
U=127.0.0.1:18501   # upstream stand-in
N=127.0.0.1:18502   # nginx
P=127.0.0.1:18503   # keystone-proxy
A=127.0.0.1:18504   # keystone-proxy admin
KEY=bench-local-key

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    echo "== installing nginx and wrk" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq nginx wrk >/dev/null
fi
PIN0="" PIN1=""
if need taskset && [ "$(nproc)" -ge 2 ]; then PIN0="taskset -c 0" PIN1="taskset -c 1"; fi

echo "== building (release)" >&2
cargo build --release --quiet --bin keystone-proxy --example bench_cloud --example floor
BIN=target/release/keystone-proxy
CLOUD=target/release/examples/bench_cloud
FLOOR=target/release/examples/floor

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

wait_http() { for _ in $(seq 100); do curl -fs -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
# curl is not guaranteed on a fresh machine: fall back to bash's /dev/tcp.
if ! need curl; then
    curl() { local url=${*: -1}; local hp=${url#http://}; hp=${hp%%/*}; exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}" || return 1
             printf 'GET /%s HTTP/1.0\r\n\r\n' "${url#http://*/}" >&3; grep -q "200" <(head -1 <&3); }
fi

$PIN0 "$CLOUD" serve "$K" "$U" "${LOGIN_DELAY_MS:-50}" >"$work/cloud.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q ready "$work/cloud.log" && break; sleep 0.1; done

prefetch=${PREFETCH:-true}
"$CLOUD" config "$K" "$P" "$A" "$KEY" "$prefetch" >"$work/proxy.toml"
start_proxy() {
    RUST_LOG=warn $PIN0 "$BIN" serve --config "$work/proxy.toml" >"$work/proxy.out" 2>"$work/proxy.log" &
    PROXY_PID=$!; pids+=("$PROXY_PID")
    wait_http "http://$A/readyz"
}
start_proxy

mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
    client_max_body_size 0;
    proxy_request_buffering off;
    upstream cloud { server $U; keepalive 64; }
    server {
        listen $N;
        location / {
            proxy_pass http://cloud/v2.1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Auth-Token "bench-token-0";
        }
    }
}
EOF
$PIN0 nginx -c "$work/nginx.conf" & pids+=($!)
wait_http "http://$N/x" || true

# CPU seconds (user + system) used so far by the processes named.
cpu_of() { local t=0; for pid in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$t"; }
nginx_pids() { pgrep -f "nginx: (master|worker)" | tr '\n' ' '; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
quiet_machine() { awk -v limit="$LOAD_LIMIT" '{exit !($1 < limit)}' /proc/loadavg; }
TICK=$(getconf CLK_TCK)

# One wrk run against a target: "requests_per_second cpu_microseconds_per_request
# request_MiB/s p50_ms p99_ms" (MiB/s = req/s × BODY_MIB, the request body size).
run_wrk() {
    local name=$1 url=$2; shift 2
    local who
    case $name in proxy) who=$PROXY_PID;; nginx) who=$(nginx_pids);; direct) who=$(pgrep -f "bench_cloud serve");; esac
    local before; before=$(cpu_of $who)
    local out; out=$($PIN1 wrk -t1 -c64 -d"${DURATION}s" --latency "$@" "$url")
    local after; after=$(cpu_of $who)
    echo "$out" | awk -v ticks=$((after - before)) -v tick="$TICK" -v body_mib="${BODY_MIB:-0}" '
        /Requests\/sec/ {rps=$2}
        /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
        /requests in/ {n=$1}
        function ms(v) { if (v ~ /us/) return v/1000; if (v ~ /ms/) return v+0; if (v ~ /s/) return v*1000; return v }
        END {printf "%.0f %.1f %.1f %.2f %.2f\n", rps, (n > 0 ? ticks / tick * 1e6 / n : 0), rps * body_mib, ms(p50), ms(p99)}'
}

cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1024 * 1024)
EOF

declare -A results
measure() {  # case name, then per target: target url [wrk args…] separated by ::
    local case=$1; shift
    for round in $(seq "$ROUNDS"); do
        until quiet_machine; do echo "   (machine busy, waiting)" >&2; sleep 5; done
        for target in direct nginx proxy; do
            local url args=()
            case $target in
                direct) url="http://$U/v2.1/x"; args=(-H "X-Auth-Token: bench-token-0");;
                nginx) url="http://$N/x";;
                proxy) url="http://$P/compute/x"; args=(-H "Authorization: Bearer $KEY");;
            esac
            results[$case,$target,$round]=$(run_wrk "$target" "$url" "${args[@]}" "$@")
        done
    done
}
column_median() { local case=$1 target=$2 col=$3; for r in $(seq "$ROUNDS"); do echo "${results[$case,$target,$r]}" | cut -d' ' -f"$col"; done | median; }

if has a; then
    echo "== (a) throughput: 64 connections, small GET" >&2
    measure a
fi
has b && echo "== (b) latency at a fixed rate (open loop)" >&2
# oha sends at RATE req/s whatever the answers' latency, and corrects for
# coordinated omission; it is built from crates.io (≈ 4–10 min) on a full
# run when missing, and skipped by the smoke.
RATE=${RATE:-5000}
if has b && ! need oha && [ "$SMOKE" != 1 ]; then
    echo "   installing oha (cargo install oha --locked)" >&2
    cargo install oha --locked --quiet >/dev/null 2>&1 || echo "   oha could not be installed: (b) skipped" >&2
    export PATH="$HOME/.cargo/bin:$PATH"
fi
run_oha() {  # target url [header]: "p50_ms p99_ms success_rate"
    $PIN1 oha -z "${DURATION}s" -c 64 -q "$RATE" --latency-correction --no-tui --output-format json "$@" \
        | python3 -c 'import json, sys; d = json.load(sys.stdin); p = d["latencyPercentiles"]
print("%.3f %.3f %.4f" % (p["p50"] * 1000, p["p99"] * 1000, d["summary"]["successRate"]))'
}
if has b && need oha; then
    for round in $(seq "$ROUNDS"); do
        until quiet_machine; do echo "   (machine busy, waiting)" >&2; sleep 5; done
        results[b,direct,$round]=$(run_oha -H "X-Auth-Token: bench-token-0" "http://$U/v2.1/x")
        results[b,nginx,$round]=$(run_oha "http://$N/x")
        results[b,proxy,$round]=$(run_oha -H "Authorization: Bearer $KEY" "http://$P/compute/x")
    done
fi

if has c; then
    echo "== (c) 1 MiB POST bodies" >&2
    BODY_MIB=1 measure c -s "$work/post.lua"
fi

if has g; then
    echo "== (g) one streamed upload: direct, then through a fresh proxy" >&2
    UPLOAD_BYTES=$((1024 * 1024 * 1024)); if [ "$SMOKE" = 1 ]; then UPLOAD_BYTES=$((64 * 1024 * 1024)); fi
    kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
    start_proxy
    curl -fs -o /dev/null -H "Authorization: Bearer $KEY" "http://$P/compute/x" || true  # the token, before the clock starts
    upload_direct=$($PIN1 "$CLOUD" upload "http://$U/v2.1/big" X-Auth-Token bench-token-0 "$UPLOAD_BYTES")
    # nginx streams it too (proxy_request_buffering off): the same three
    # copies per byte on CPU 0 as the proxy, against one when direct.
    upload_nginx=$($PIN1 "$CLOUD" upload "http://$N/big" X-Unused - "$UPLOAD_BYTES")
    upload_proxy=$($PIN1 "$CLOUD" upload "http://$P/compute/big" Authorization "Bearer $KEY" "$UPLOAD_BYTES")
    peak_upload=$(awk '/VmHWM/ {print $2}' "/proc/$PROXY_PID/status")
fi

if has i; then
    echo "== (i) both CPUs: the proxy's workers against nginx's" >&2
    # Nothing pinned: nginx with 2 worker processes, the proxy with its
    # default workers (one per CPU), wrk with 2 threads, all on both CPUs.
    sed -e "s/^worker_processes 1;/worker_processes 2;/" -e "s/listen $N;/listen 127.0.0.1:18506;/" \
        -e "s|nginx.pid;|nginx-i.pid;|" "$work/nginx.conf" >"$work/nginx-i.conf"
    nginx -c "$work/nginx-i.conf" & pids+=($!)
    "$CLOUD" config "$K" 127.0.0.1:18507 127.0.0.1:18508 "$KEY" true >"$work/proxy-i.toml"
    RUST_LOG=warn "$BIN" serve --config "$work/proxy-i.toml" >/dev/null 2>"$work/proxy-i.log" & proxy_i=$!; pids+=("$proxy_i")
    wait_http "http://127.0.0.1:18508/readyz"; wait_http "http://127.0.0.1:18506/x" || true
    for round in $(seq "$ROUNDS"); do
        until quiet_machine; do echo "   (machine busy, waiting)" >&2; sleep 5; done
        for target in nginx proxy; do
            case $target in
                nginx) url=http://127.0.0.1:18506/x who=$(pgrep -f "nginx-i.conf|nginx: worker" | tr '\n' ' ') args=() ;;
                proxy) url=http://127.0.0.1:18507/compute/x who=$proxy_i args=(-H "Authorization: Bearer $KEY") ;;
            esac
            before=$(cpu_of $who)
            out=$(wrk -t2 -c64 -d"${DURATION}s" "${args[@]}" "$url")
            after=$(cpu_of $who)
            results[i,$target,$round]=$(echo "$out" | awk -v ticks=$((after - before)) -v tick="$TICK" '
                /Requests\/sec/ {rps=$2} /requests in/ {n=$1}
                END {printf "%.0f %.1f\n", rps, (n > 0 ? ticks / tick * 1e6 / n : 0)}')
        done
    done
fi

# (h) before (d) and (e): nginx and the floor inject the stand-in's first
# token, which (e) revokes.
if has h && need valgrind; then
    echo "== (h) instructions per request (callgrind)" >&2
    # Wall time on a shared machine drifts; instructions counted by
    # callgrind do not (the same binary and load give the same count). Each
    # target runs under callgrind on its own port, is warmed up, then
    # counts IR_REQUESTS requests on 64 connections, sent by bench_cloud
    # (exactly that many). The proxy's upstream and Keystone are the
    # stand-ins above (not counted). The proxy is counted twice: for a
    # client without rules, and for one with 10 access rules, the one that
    # matches last.
    IR_REQUESTS=${IR_REQUESTS:-10000}; if [ "$SMOKE" = 1 ]; then IR_REQUESTS=500; fi
    RULES_KEY=bench-rules-key
    "$CLOUD" config "$K" 127.0.0.1:18513 127.0.0.1:18514 "$KEY" "$prefetch" >"$work/proxy-ir.toml"
    "$CLOUD" config "$K" 127.0.0.1:18513 127.0.0.1:18514 "$KEY" "$prefetch" "$RULES_KEY" >"$work/proxy-ir-rules.toml"
    sed -e "s/listen $N;/listen 127.0.0.1:18512;/" -e "s|nginx.pid;|nginx-ir.pid;|" -e "s/^daemon off;/daemon off;\nmaster_process off;/" \
        "$work/nginx.conf" >"$work/nginx-ir.conf"
    # name ready_url target_url header value: Ir per request. A value of
    # SESSION is a facade session token, got once the proxy is ready.
    count_one() {
        local name=$1 ready=$2 url=$3 header=$4 value=$5
        local out="$work/callgrind-$name"
        case $name in
            # exec: the job's pid is valgrind's own, so it can be told to dump and stopped.
            proxy) RUST_LOG=warn exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "${PROXY_BIN:-$BIN}" serve --config "$work/proxy-ir.toml" ;;
            proxy-rules) RUST_LOG=warn exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "${PROXY_BIN:-$BIN}" serve --config "$work/proxy-ir-rules.toml" ;;
            # The same at warn: no request line (what the line costs).
            proxy-json-quiet) RUST_LOG=warn exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "${PROXY_BIN:-$BIN}" serve --config "$work/proxy-ir-rules.toml" ;;
            # At the default log level: one request line per request.
            proxy-json*) exec env -u RUST_LOG $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "${PROXY_BIN:-$BIN}" serve --config "$work/proxy-ir-rules.toml" 2>"$work/proxy-ir-info.log" ;;
            # The reference floor: a minimal hyper proxy (bench/floor.rs).
            floor*) exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "$FLOOR" 127.0.0.1:18515 "$U" /v2.1 X-Auth-Token bench-token-0 ;;
            nginx*) exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$work/nginx-ir.conf" ;;
            direct*) exec $PIN0 valgrind --tool=callgrind --callgrind-out-file="$out" "$CLOUD" serve 127.0.0.1:18510 127.0.0.1:18511 0 ;;
        esac >"$work/valgrind-$name.log" 2>&1 &
        local vg=$!; pids+=("$vg")
        # Any answer will do: the first requests below wait for a token.
        for _ in $(seq 300); do curl -s -o /dev/null "$ready" 2>/dev/null && break; sleep 0.1; done
        if [ "$value" = SESSION ]; then value=$(session_token http://127.0.0.1:18513); fi
        $PIN1 "$CLOUD" get "$url" "$header" "$value" 2000 64 >/dev/null
        callgrind_control -z "$vg" >/dev/null 2>&1
        $PIN1 "$CLOUD" get "$url" "$header" "$value" "$IR_REQUESTS" 64 >"$work/load-$name.out"
        callgrind_control -d "$vg" >/dev/null 2>&1
        for _ in $(seq 50); do ls "$out".[0-9]* >/dev/null 2>&1 && break; sleep 0.1; done
        sleep 1
        kill "$vg" 2>/dev/null; wait "$vg" 2>/dev/null || true
        # A count of failed requests would compare nothing: none is given.
        if ! grep -q "failed=0" "$work/load-$name.out"; then
            echo "   (h) $name: $(cat "$work/load-$name.out")" >&2
            echo "failed"
            return
        fi
        # Read by bench/callgrind.py, not callgrind_annotate (3.19 misattributes
        # a zeroed dump); the dumps stay in target/bench/ to be looked into
        # (`bench/callgrind.py target/bench/callgrind-proxy.* --requests N --top 40`).
        mkdir -p target/bench && rm -f "target/bench/callgrind-$name".* && cp "$out".[0-9]* target/bench/
        for dump in target/bench/"callgrind-$name".[0-9]*; do [ -s "$dump" ] || rm -f "$dump"; done
        python3 bench/callgrind.py target/bench/"callgrind-$name".[0-9]* --requests "$IR_REQUESTS" | head -1
    }
    # The facade's session token for the client "bench" (as `openstack`
    # logs in through the proxy).
    session_token() {
        curl -s -D - -o /dev/null -X POST "$1/v3/auth/tokens" -H 'Content-Type: application/json' \
            -d '{"auth": {"identity": {"methods": ["password"], "password": {"user":
                 {"name": "bench", "domain": {"name": "Default"}, "password": "'"$KEY"'"}}}}}' \
            | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}' | tr -d '\r'
    }
    # IR_ONLY="proxy proxy-json" counts only those (while working on one).
    wanted() { [ -z "${IR_ONLY:-}" ] || [[ " $IR_ONLY " == *" $1 "* ]]; }
    count_ir() { wanted "$1" && count_one "$@" || true; }
    ready=http://127.0.0.1:18514/readyz proxy=http://127.0.0.1:18513
    # Plain: the stand-in answers "ok", the proxy logs at warn (as before
    # 2026-12-07, so counts compare with the earlier ones).
    ir_direct=$(count_ir direct "http://127.0.0.1:18511/v2.1/x" "http://127.0.0.1:18511/v2.1/x" X-Auth-Token bench-token-0)
    ir_nginx=$(count_ir nginx "http://127.0.0.1:18512/x" "http://127.0.0.1:18512/x" X-Bench 1)
    ir_proxy=$(count_ir proxy $ready "$proxy/compute/x" Authorization "Bearer $KEY")
    ir_rules=$(count_ir proxy-rules $ready "$proxy/compute/x" Authorization "Bearer $RULES_KEY")
    # Realistic: a 1 KiB JSON server list (application/json) as nova
    # answers, the proxy at its default log level (a request line each);
    # against the floor, a minimal hyper proxy, on the same upstream.
    ir_direct_json=$(count_ir direct-json "http://127.0.0.1:18511/v2.1/servers" "http://127.0.0.1:18511/v2.1/servers" X-Auth-Token bench-token-0)
    ir_nginx_json=$(count_ir nginx-json "http://127.0.0.1:18512/x" "http://127.0.0.1:18512/servers" X-Bench 1)
    ir_floor_json=$(count_ir floor-json "http://127.0.0.1:18515/compute/x" "http://127.0.0.1:18515/compute/servers" Authorization "Bearer $KEY")
    ir_json=$(count_ir proxy-json $ready "$proxy/compute/servers" Authorization "Bearer $KEY")
    ir_json_quiet=$(count_ir proxy-json-quiet $ready "$proxy/compute/servers" Authorization "Bearer $KEY")
    ir_json_rules=$(count_ir proxy-json-rules $ready "$proxy/compute/servers" Authorization "Bearer $RULES_KEY")
    ir_json_session=$(count_ir proxy-json-session $ready "$proxy/compute/servers" X-Auth-Token SESSION)
    ir_linked=$(count_ir proxy-json-linked $ready "$proxy/compute/servers/linked" Authorization "Bearer $KEY")
fi

counters() { curl -fs "http://$K/counters" 2>/dev/null || echo '{}'; }
if has d; then
    echo "== (d) cold start: 1,000 concurrent requests over 10 projects" >&2
    kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
    prefetch=false
    "$CLOUD" config "$K" "$P" "$A" "$KEY" "$prefetch" >"$work/proxy.toml"
    start_proxy
    rss_idle=$(rss_kib "$PROXY_PID")   # a fresh process, ready, nothing served yet
    before=$(counters)
    burst=$($PIN1 "$CLOUD" burst "http://$P" "$KEY" 1000 10 1000)
    after=$(counters)
fi

if has e; then
    echo "== (e) token revoked under full load" >&2
    revoke_before=$(counters)
    ( sleep 1; curl -fs -X POST "http://$K/revoke" >/dev/null ) &
    revoke_load=$($PIN1 wrk -t1 -c64 -d3s -H "Authorization: Bearer $KEY" "http://$P/compute/x" | awk '/Non-2xx/ {print $5} END {}')
    revoke_after=$(counters)
fi

if has f; then
    echo "== (f) memory" >&2
    $PIN1 "$CLOUD" hold "$P" 1000 3 >/dev/null & holder=$!
    sleep 2; rss_1000=$(rss_kib "$PROXY_PID"); wait "$holder" || true
    $PIN1 "$CLOUD" burst "http://$P" "$KEY" 10000 10000 64 >/dev/null
    rss_scopes=$(rss_kib "$PROXY_PID")
fi

# ----------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf (b > 0 ? "%.2f" : "-"), a / b}'; }
echo
echo "keystone-proxy benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${ROUNDS} rounds × ${DURATION}s, medians"
echo
printf '| case | direct | nginx | keystone-proxy | proxy/nginx | proxy/direct |\n|---|---|---|---|---|---|\n'
specs=()
if has a; then specs+=("a:1:req/s" "a:2:CPU µs/req" "a:4:p50 ms (closed loop)" "a:5:p99 ms (closed loop)"); fi
if [ -n "${results[b,proxy,1]:-}" ]; then specs+=("b:1:p50 ms at $RATE req/s" "b:2:p99 ms at $RATE req/s" "b:3:success rate at $RATE req/s"); fi
if has c; then specs+=("c:3:MiB/s (1 MiB POST)" "c:2:CPU µs/req (1 MiB POST)"); fi
for spec in "${specs[@]}"; do
    IFS=: read -r case col label <<<"$spec"
    d=$(column_median "$case" direct "$col"); n=$(column_median "$case" nginx "$col"); p=$(column_median "$case" proxy "$col")
    printf '| (%s) %s | %s | %s | %s | %s | %s |\n' "$case" "$label" "$d" "$n" "$p" "$(ratio "$p" "$n")" "$(ratio "$p" "$d")"
done
echo
if has i; then
    ni=$(column_median i nginx 1); pi=$(column_median i proxy 1)
    nc=$(column_median i nginx 2); pc=$(column_median i proxy 2)
    echo "(i) both CPUs (nginx 2 workers, keystone-proxy $(nproc) workers (its default), wrk -t2 -c64, nothing pinned): req/s nginx $ni, keystone-proxy $pi ($(ratio "$pi" "$ni") × nginx); CPU µs/req nginx $nc, keystone-proxy $pc ($(ratio "$pc" "$nc") × nginx)"
    if has a; then echo "    against one CPU (a): $(ratio "$(column_median a proxy 1)" "$(column_median a nginx 1)") × nginx's req/s"; fi
fi
has d && echo "(d) cold start, 1,000 requests over 10 projects: $burst; Keystone calls before $before, after $after"
has e && echo "(e) token revoked under load: Keystone calls before $revoke_before, after $revoke_after; non-2xx answers to clients: ${revoke_load:-0}"
has f && echo "(f) RSS: idle (fresh, ready; measured in (d)) $((${rss_idle:-0} / 1024)) MiB; with 1,000 open connections (after the load above) $((rss_1000 / 1024)) MiB; after 10,000 cached scopes $((rss_scopes / 1024)) MiB"
has g && echo "(g) one $((UPLOAD_BYTES / 1024 / 1024)) MiB streamed upload: direct $upload_direct MiB/s, nginx $upload_nginx MiB/s, keystone-proxy $upload_proxy MiB/s ($(ratio "$upload_proxy" "$upload_direct") × direct, $(ratio "$upload_proxy" "$upload_nginx") × nginx); the proxy's peak RSS $((peak_upload / 1024)) MiB (retry_body_limit 8 MiB)"
if has h && [ -n "${ir_proxy:-}" ]; then echo "(h) instructions per request (callgrind, $IR_REQUESTS requests, 64 connections): direct $ir_direct, nginx $ir_nginx, keystone-proxy $ir_proxy ($(ratio "$ir_proxy" "$ir_nginx") × nginx), keystone-proxy for a client with 10 rules $ir_rules ($(ratio "$ir_rules" "$ir_proxy") × without)"; fi
if has h && [ -n "${ir_json:-}" ]; then
    echo "(h) realistic (a 1 KiB JSON answer, the default log level), instructions per request: direct $ir_direct_json, nginx $ir_nginx_json (access log off), floor (minimal hyper proxy) $ir_floor_json; keystone-proxy $ir_json ($(ratio "$ir_json" "$ir_floor_json") × floor, $(ratio "$ir_json" "$ir_nginx_json") × nginx), of which the request line $(( ${ir_json:-0} - ${ir_json_quiet:-0} )) (at warn $ir_json_quiet); with 10 access rules $ir_json_rules; with a facade session token $ir_json_session; with three endpoint links rewritten $ir_linked"
fi
if has h && [ -z "${ir_proxy:-}" ]; then echo "(h) instructions per request: skipped (needs valgrind)"; fi
if has b && [ -z "${results[b,proxy,1]:-}" ]; then echo "(b) open-loop latency: skipped (oha is not installed; a full run installs it)"; fi
