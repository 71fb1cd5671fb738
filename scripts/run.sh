#!/usr/bin/env bash
# make run: devbroker and every Twinflow service on this host (release build, embedded SQLite), the
# seed scenario loaded, simulated thermostats sending telemetry, and a live view, until Ctrl-C.
#
# A second `make run` resumes: twins and time series stay in .twinflow/data (devbroker keeps its
# topics in memory, so they start empty). `make run FRESH=1` starts from nothing.
# TWINFLOW_ROOMS (10) rooms, each with a thermostat; TWINFLOW_SIMULATE_RATE (20) messages/s.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release
rooms="${TWINFLOW_ROOMS:-10}"
rate="${TWINFLOW_SIMULATE_RATE:-20}"
export TWINFLOW_DATA_DIR="${TWINFLOW_DATA_DIR:-.twinflow/data}"
export TWINS_URL="${TWINS_URL:-http://localhost:8080}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}"
# Whether something answers on a local TCP port.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in 9092 8080 8081 8082 8083 8084; do
  if listening "$port"; then
    echo "port $port is in use (another make run, or docker compose up?); stop that first (nothing was changed)." >&2
    exit 1
  fi
done

if [ "${FRESH:-0}" = "1" ]; then rm -rf "$TWINFLOW_DATA_DIR"; fi
mkdir -p .twinflow "$TWINFLOW_DATA_DIR"

pids=()
names=()
watcher=""
kill_all() {
  echo "stopping at once (SIGKILL)…"
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
stop() {
  trap - EXIT
  # A second Ctrl-C (or TERM) while the services stop kills them at once rather than leaving them running.
  trap kill_all INT TERM HUP
  set +e
  [ -n "$watcher" ] && kill -TERM "$watcher" 2>/dev/null
  echo
  echo "stopping Twinflow…"
  # Last started, first stopped, each waited for: the services finish while devbroker still answers.
  local failed=()
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    local status=0
    wait "${pids[$i]}" 2>/dev/null || status=$?
    # A signal's trap ends a wait early: wait again until the process is gone.
    while kill -0 "${pids[$i]}" 2>/dev/null; do
      status=0
      wait "${pids[$i]}" 2>/dev/null || status=$?
    done
    # 143: ended by the SIGTERM itself, before it could install its handler.
    if [ "$status" -ne 0 ] && [ "$status" -ne 143 ]; then failed+=("${names[$i]} (exit $status, see .twinflow/${names[$i]}.log)"); fi
  done
  if [ ${#failed[@]} -eq 0 ]; then
    echo "stopped: every service finished its batch, committed and left its group; data kept in $TWINFLOW_DATA_DIR (FRESH=1 starts over)."
  else
    echo "stopped, but not cleanly: ${failed[*]}; data kept in $TWINFLOW_DATA_DIR."
    exit 1
  fi
}
# Ctrl-C, a TERM or the terminal closing ends the script, and whatever ends it stops the services.
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

start() { # name, then the command
  local name=$1
  shift
  # A session of its own: Ctrl-C reaches this script (which stops the services in order), not
  # every process at once (devbroker would go while the services still commit).
  setsid "$@" 2>".twinflow/$name.log" &
  pids+=($!)
  names+=("$name")
}
ready() { # name, port: the process this script started answers /readyz (devbroker: takes connections)
  local pid=""
  for ((i = 0; i < ${#names[@]}; i++)); do [ "${names[$i]}" = "$1" ] && pid=${pids[$i]}; done
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$1 exited; see .twinflow/$1.log" >&2
      return 1
    fi
    if [ "$1" = devbroker ]; then listening "$2" && return 0; else curl -fs "http://localhost:$2/readyz" >/dev/null 2>&1 && return 0; fi
    sleep 0.1
  done
  echo "$1 (port $2) is not ready after 30 s; see .twinflow/$1.log" >&2
  return 1
}

start devbroker "$bin/devbroker"
ready devbroker 9092
start twin-service "$bin/twin-service"
ready twin-service 8080
start ingress "$bin/ingress"
start propagator "$bin/propagator"
start tsi-forwarder "$bin/tsi-forwarder"
start tsi-store "$bin/tsi-store"
ready ingress 8081
ready propagator 8082
ready tsi-forwarder 8083
ready tsi-store 8084

# The seed scenario: Rooms with Thermostats by rel_has_thermostat (kept when already loaded).
if ! "$bin/twinctl" models get 'dtmi:contosocom:DigitalTwins:Room;1' >/dev/null 2>&1; then
  "$bin/twinctl" models upload deploy/models/seed >/dev/null
fi
for n in $(seq 1 "$rooms"); do
  thermostat=$(printf 'thermo_%04d' "$n")
  room=$(printf 'Room_%02d' "$n")
  # A room whose thermostat is related is loaded; anything less (a seed cut short) is loaded again.
  relationships=$("$bin/twinctl" relationships list "$room" 2>/dev/null || true)
  [[ "$relationships" == *"has_$thermostat"* ]] && continue
  "$bin/twinctl" twins put "$thermostat" --model 'dtmi:contosocom:DigitalTwins:Thermostat;1' --properties '{"Temperature":20}' >/dev/null
  "$bin/twinctl" twins put "$room" --model 'dtmi:contosocom:DigitalTwins:Room;1' --properties '{"currentTemp":20}' >/dev/null
  "$bin/twinctl" relationships put "$room" "has_$thermostat" --name rel_has_thermostat --target "$thermostat" >/dev/null
done

start simulator "$bin/twinctl" simulate --devices "$rooms" --rate "$rate" --pattern sine

cat <<TXT
Twinflow is running: devbroker (Kafka) on localhost:9092, twin-service :8080, ingress :8081,
propagator :8082, tsi-forwarder :8083, tsi-store :8084; $rooms rooms, thermostats at $rate msgs/s.
  a room            curl $TWINS_URL/digitaltwins/Room_01
  a time series     $bin/twinctl series thermo_0001 --interval PT1M --agg avg
  notifications     $bin/twinctl tail eventgrid.twin-events
Logs in .twinflow/. The live view starts in a moment; Ctrl-C stops everything.
TXT
sleep 3
# In the background and waited for, so that a TERM or HUP reaches this script's trap at once (bash
# runs a trap only once the foreground command has ended, and the view never ends by itself).
"$bin/twinctl" watch --rooms 12 &
watcher=$!
wait "$watcher" || true
