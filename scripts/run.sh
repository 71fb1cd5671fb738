#!/usr/bin/env bash
# make run: devbroker, twin-service, ingress and propagator on this host, the seed scenario loaded, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug
export TWINFLOW_DATA_DIR="${TWINFLOW_DATA_DIR:-.twinflow/data}"
export TWINS_URL="${TWINS_URL:-http://localhost:8080}"
mkdir -p .twinflow

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

"$bin/devbroker" 2> .twinflow/devbroker.log &
pids+=($!)
"$bin/twin-service" 2> .twinflow/twin-service.log &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fs "$TWINS_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

"$bin/ingress" 2> .twinflow/ingress.log &
pids+=($!)
"$bin/propagator" 2> .twinflow/propagator.log &
pids+=($!)

# The seed scenario: Rooms with Thermostats by rel_has_thermostat (skipped when already loaded).
if ! "$bin/twinctl" models get 'dtmi:contosocom:DigitalTwins:Room;1' >/dev/null 2>&1; then
  "$bin/twinctl" models upload deploy/models/seed >/dev/null
  for n in 01 02 03; do
    "$bin/twinctl" twins put "thermo_00$n" --model 'dtmi:contosocom:DigitalTwins:Thermostat;1' --properties '{"Temperature":20}' >/dev/null
    "$bin/twinctl" twins put "Room_$n" --model 'dtmi:contosocom:DigitalTwins:Room;1' --properties '{"currentTemp":20}' >/dev/null
    "$bin/twinctl" relationships put "Room_$n" "has_thermo_00$n" --name rel_has_thermostat --target "thermo_00$n" >/dev/null
  done
fi

cat <<TXT
Twinflow is running (Ctrl-C stops it; logs in .twinflow/):
  Kafka (devbroker)   localhost:9092      kcat -b localhost:9092 -L
  twin-service        $TWINS_URL   curl $TWINS_URL/digitaltwins/Room_01
  the seed scenario   $bin/twinctl query "SELECT Room, T FROM DIGITALTWINS Room JOIN T RELATED Room.rel_has_thermostat"
  notifications       kcat -b localhost:9092 -C -t eventgrid.twin-events -f '%k %s\n'
  ingress             http://localhost:8081/readyz
  propagator          http://localhost:8082/metrics   (each Room's currentTemp follows its thermostat)
  a device message    echo '{"systemProperties":{"iothub-connection-device-id":"thermo_0001"},"body":{"Temperature":22}}' | kcat -b localhost:9092 -P -t iothub.d2c -k thermo_0001 -X partitioner=murmur2_random
tsi-forwarder and tsi-store join as they land.
TXT
wait
