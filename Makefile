# Twinflow: the two commands are `make run` and `make test`.
.PHONY: deps build test lint format run bench bench-kafka bench-twins bench-commands bench-command-latency bench-ingress bench-propagator bench-tsi clean

deps:
	@bash scripts/install-deps.sh

build: deps
	swift build

## The whole test suite: the format lint, unit tests, the JSON Patch conformance files, and
## integration tests against librdkafka's mock cluster over TCP. `swift build --build-tests` builds
## every executable the tests start (devbroker and every service) with the tests; a test refuses
## an executable older than its sources. Tests run one at a time: many start a broker and several
## services as processes, and run side by side on two cores they would time each other out.
test: deps lint
	swift build --build-tests
	swift test --skip-build --no-parallel

## swift-format's lint with the checked-in configuration (.swift-format); `make format` rewrites.
lint:
	swift format lint --strict --parallel --recursive Package.swift Shared Services Tests Benchmarks

format:
	swift format format --in-place --parallel --recursive Package.swift Shared Services Tests Benchmarks

## Every service on this host in release mode (devbroker for Kafka, embedded SQLite), the seed
## scenario, simulated thermostats and a live view; Ctrl-C stops them. `make run FRESH=1` starts over.
run: deps
	@for product in devbroker twin-service ingress propagator tsi-forwarder tsi-store twinctl; do \
		swift build -c release --product $$product || exit 1; \
	done
	FRESH=$(FRESH) bash scripts/run.sh

## The whole pipeline in release mode: device messages/s end to end with each stage's rate and kcat's
## pass-through beside them, device → room and device → tsi-store latency at 1,000 and 10,000 msgs/s
## (p50/p99), and the number lost (must be 0); the last line is the contract's JSON object.
bench: deps
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product ingress
	swift build -c release --product propagator
	swift build -c release --product tsi-forwarder
	swift build -c release --product tsi-store
	swift build -c release --product pipeline-bench
	.build/release/pipeline-bench

## Kafka layer throughput against kcat, in release mode.
bench-kafka: deps
	swift build -c release --product devbroker
	swift build -c release --product kafka-bench
	.build/release/kafka-bench

## twin-service REST latency and throughput with 100,000 twins, in release mode (wrk drives the load).
bench-twins: deps
	@command -v wrk >/dev/null 2>&1 || { s=$$([ "$$(id -u)" -eq 0 ] || echo sudo); $$s apt-get update -q && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -q wrk; }
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product twin-bench
	.build/release/twin-bench

## Patch commands from Kafka applied by twin-service with their notifications delivered, in release mode.
bench-commands: deps
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product command-bench
	.build/release/command-bench

## Device messages through one ingress instance, with kcat's one-hop rate beside it, in release mode.
bench-ingress: deps
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product ingress
	swift build -c release --product ingress-bench
	.build/release/ingress-bench

## Thermostat updates propagated to rooms by one propagator, and thermostat → room latency at
## 1,000 updates/s (p50/p99 from an HdrHistogram), in release mode.
bench-propagator: deps
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product propagator
	swift build -c release --product propagator-bench
	.build/release/propagator-bench

## tsi-forwarder and tsi-store: events/s of each in steady state, aggregateSeries p99 over 1,000,000
## stored events of one twin (PT1M over a day, PT1H over 30 days), and eventhub.telemetry → visible
## in a query at 1,000 events/s (p50/p99), in release mode.
bench-tsi: deps
	swift build -c release --product devbroker
	swift build -c release --product tsi-forwarder
	swift build -c release --product tsi-store
	swift build -c release --product tsi-bench
	.build/release/tsi-bench

## Patch command → Twin.Update latency at fixed rates of 100/s and 1,000/s (p50/p99), in release mode.
bench-command-latency: deps
	swift build -c release --product devbroker
	swift build -c release --product twin-service
	swift build -c release --product command-bench
	.build/release/command-bench --latency

clean:
	rm -rf .build .twinflow
