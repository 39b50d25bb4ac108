# Test services, sourced by scripts/test and bench/transfer. Each function exports what the
# tests read and registers its cleanup in the caller's $work directory.
#   ensure_postgres   HUB_TEST_POSTGRES_URL: the running server on 127.0.0.1:5432, else a
#                     temporary cluster (Debian's postgresql package)
#   start_garage      AWS_* and HUB_TEST_S3_BUCKET: a real S3 server (Garage), installed into
#                     ~/.cache/hub-tools on first use

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    export HUB_TEST_POSTGRES_URL=${HUB_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    return
  fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $bindir ]]; then
    echo "Postgres does not answer on 127.0.0.1:5432 and no server is installed (apt-get install postgresql)" >&2
    return 1
  fi
  local dir=$work/postgres port
  port=$(free_port)
  mkdir -p "$dir"
  # Postgres refuses to run as root.
  local as=()
  if [[ $(id -u) == 0 ]]; then chmod o+x "$work"; chown postgres "$dir"; as=(runuser -u postgres --); fi
  "${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  cleanups+=("${as[*]} $bindir/pg_ctl -D $dir/data -m immediate stop")
  export HUB_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres
}

garage_bin() {
  local bin=${HUB_GARAGE_BIN:-$HOME/.cache/hub-tools/bin/garage}
  if [[ ! -x $bin ]]; then
    echo "installing Garage 2.5.0 into ~/.cache/hub-tools (once; about 9 minutes on 2 cores)" >&2
    CARGO_TARGET_DIR=$HOME/.cache/hub-tools/build cargo install garage --version 2.5.0 --locked \
      --root "$HOME/.cache/hub-tools" --quiet >&2
    rm -rf "$HOME/.cache/hub-tools/build"
  fi
  echo "$bin"
}

start_garage() {
  local bin dir=$work/garage rpc s3 admin
  bin=$(garage_bin)
  rpc=$(free_port); s3=$(free_port); admin=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
# Stands for an S3 service on other machines: no CPU spent compressing (model weights barely
# compress) on the machine the hub is measured on.
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
admin_token = "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOML
  local g=("$bin" -c "$dir/garage.toml")
  # At nice 10, for the same reason: the load suite measures the hub, not Garage's share of 2 cores.
  nice -n 10 "${g[@]}" server >"$dir/log" 2>&1 &
  cleanups+=("kill $!")
  # `node id` reads a key file and can answer before the RPC port listens: wait for `status`.
  local node= ready=
  for _ in $(seq 150); do
    "${g[@]}" status >/dev/null 2>&1 && ready=1 && break
    sleep 0.2
  done
  [[ -n $ready ]] && node=$("${g[@]}" node id -q 2>/dev/null | cut -d@ -f1)
  [[ -n $node ]] || { echo "Garage did not start:" >&2; cat "$dir/log" >&2; return 1; }
  "${g[@]}" layout assign -z dc1 -c 1G "$node" >/dev/null
  "${g[@]}" layout apply --version 1 >/dev/null
  "${g[@]}" bucket create hub >/dev/null
  local key
  key=$("${g[@]}" key create hub-key)
  "${g[@]}" bucket allow --read --write --owner hub --key hub-key >/dev/null
  export AWS_ENDPOINT=http://127.0.0.1:$s3 AWS_REGION=garage AWS_ALLOW_HTTP=true
  AWS_ACCESS_KEY_ID=$(awk -F': *' '/Key ID/ {print $2}' <<<"$key")
  AWS_SECRET_ACCESS_KEY=$(awk -F': *' '/Secret key/ {print $2}' <<<"$key")
  export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY HUB_TEST_S3_BUCKET=hub
  [[ -n $AWS_ACCESS_KEY_ID && -n $AWS_SECRET_ACCESS_KEY ]] || { echo "could not read the Garage key:" >&2; echo "$key" >&2; return 1; }
}

run_cleanups() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[$i]}" >/dev/null 2>&1 || true; done
}
