import BenchmarkSupport
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TwinflowCodec

/// twin-bench: loads 100,000 twins and 100,000 relationships into a twin-service (the release
/// binary beside this one, on a fresh store, publishing its notifications to a devbroker), then
/// measures its REST API: loading and the JOIN queries through Swift HTTP clients, GET/incoming
/// latency and PATCH throughput through wrk.
///
///     swift build -c release --product devbroker --product twin-service --product twin-bench && .build/release/twin-bench
///
/// With `TWINFLOW_DATABASE_URL` twin-service keeps the graph in a new database on that PostgreSQL
/// server (see ``BenchmarkDatabase``), and with `TWIN_BENCH_INSTANCES=2` a second instance shares
/// it: the graph is loaded through the first, wrk measures the second (reads of what the other wrote).
/// `TWIN_BENCH_ROOMS` sets the number of rooms (50,000 unless set; each has a thermostat);
/// `TWIN_BENCH_WRK_PORT` points wrk at another port than twin-service's, which shows a failed wrk run
/// stopping the benchmark (a closed port: every connection refused).
await runBenchmark("twin-bench") {
    let rooms = Int(ProcessInfo.processInfo.environment["TWIN_BENCH_ROOMS"] ?? "") ?? 50_000
    guard Wrk.isAvailable else { throw BenchmarkError("wrk is needed (apt-get install wrk)") }
    let devbroker = try DevBrokerChild(partitions: 8, topics: [])
    defer { devbroker.stop() }
    let environment = ProcessInfo.processInfo.environment
    var database: BenchmarkDatabase?
    if let server = environment["TWINFLOW_DATABASE_URL"], !server.isEmpty {
        database = try await BenchmarkDatabase(onServerOf: server, prefix: "twinbench")
    }
    let instances = environment["TWIN_BENCH_INSTANCES"].map { Int($0) ?? 0 } ?? 1
    guard instances == 1 || (instances == 2 && database != nil) else {
        throw BenchmarkError("TWIN_BENCH_INSTANCES must be 1, or 2 with TWINFLOW_DATABASE_URL")
    }
    let services = try (0..<instances).map { _ in try TwinServiceChild(bootstrap: devbroker.bootstrap, databaseURL: database?.url) }
    defer { for service in services { service.stop() } }
    for service in services { try await service.waitUntilReady() }
    let service = services[0]
    let measured = services[instances - 1]
    print(
        "twin-bench: \(rooms * 2) twins, \(rooms * 2) relationships, \(instances) twin-service instance(s) on "
            + "\(database == nil ? "SQLite" : "PostgreSQL"), loaded through port \(service.port), measured on port \(measured.port)")

    let clients = try await ClientPool(port: service.port, count: 8)
    let models = try seedModels()
    try await clients.expect(.created, clients.first.post("/models", body: models))

    var timer = ContinuousClock.now
    try await clients.forEach(0..<rooms) { client, index in
        try await clients.expect(
            .ok,
            client.put(
                "/digitaltwins/thermo-\(index)", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]))
        try await clients.expect(
            .ok,
            client.put(
                "/digitaltwins/room-\(index)",
                body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"], "currentTemp": .integer(Int64(index))]))
    }
    let twinLoad = ContinuousClock.now - timer
    timer = .now
    try await clients.forEach(0..<rooms) { client, index in
        try await clients.expect(
            .ok,
            client.put(
                "/digitaltwins/room-\(index)/relationships/own",
                body: ["$targetId": .string("thermo-\(index)"), "$relationshipName": "rel_has_thermostat"]))
        try await clients.expect(
            .ok,
            client.put(
                "/digitaltwins/room-\(index)/relationships/next",
                body: ["$targetId": .string("thermo-\((index + 1) % rooms)"), "$relationshipName": "rel_has_thermostat"]))
    }
    let relationshipLoad = ContinuousClock.now - timer
    print("loaded twins in \(twinLoad), relationships in \(relationshipLoad)")

    // Each room's currentTemp is its index, so a filter on it selects one room (and its two thermostats)
    // without pinning the room's $dtId: nothing but a scan of every twin finds it.
    let join = try await clients.latencies(count: 2_000, concurrency: 1) { client, _ in
        let room = Int.random(in: 0..<rooms)
        let query = "SELECT Room, Thermostat FROM DIGITALTWINS Room JOIN Thermostat RELATED Room.rel_has_thermostat WHERE Room.$dtId = 'room-\(room)'"
        try await clients.expectRows(2, client.post("/query", body: ["query": .string(query)]), query: query)
    }
    let joinWithTargetProperty = try await clients.latencies(count: 2_000, concurrency: 1) { client, _ in
        let room = Int.random(in: 0..<rooms)
        let query =
            "SELECT Room, Thermostat FROM DIGITALTWINS Room JOIN Thermostat RELATED Room.rel_has_thermostat WHERE Room.$dtId = 'room-\(room)' AND Thermostat.Temperature > 15"
        try await clients.expectRows(2, client.post("/query", body: ["query": .string(query)]), query: query)
    }
    // Each of these reads every twin, seconds apiece with 100,000: at most 20, fewer once a minute
    // is spent, never fewer than 3.
    let joinOnProperty = try await clients.latencies(count: 20, concurrency: 1, minimum: 3, budget: .seconds(60)) { client, _ in
        let room = Int.random(in: 0..<rooms)
        let query =
            "SELECT Room, Thermostat FROM DIGITALTWINS Room JOIN Thermostat RELATED Room.rel_has_thermostat WHERE Room.currentTemp = \(room) AND Thermostat.Temperature > 15"
        try await clients.expectRows(2, client.post("/query", body: ["query": .string(query)]), query: query)
    }
    try await clients.shutdown()

    // Latency with one client, throughput with several, from wrk: it costs this 2-core machine little.
    let wrkPort = Int(ProcessInfo.processInfo.environment["TWIN_BENCH_WRK_PORT"] ?? "") ?? measured.port
    let randomThermostat = "return wrk.format(nil, \"/digitaltwins/thermo-\" .. math.random(0, \(rooms - 1)))"
    let get = try Wrk.run(port: wrkPort, connections: 1, seconds: 10, request: randomThermostat)
    let incoming = try Wrk.run(
        port: wrkPort, connections: 1, seconds: 10,
        request: "return wrk.format(nil, \"/digitaltwins/thermo-\" .. math.random(0, \(rooms - 1)) .. \"/incomingrelationships\")"
    )
    let patchBody = #"[{"op":"replace","path":"/Temperature","value":21.5}]"#
    // Group commit shares a transaction among the patches in flight, so throughput grows with clients.
    let patchClients = [8, 16, 32]
    let patches = try patchClients.map { clients in
        try Wrk.run(port: wrkPort, connections: clients, seconds: 10, method: "PATCH", body: patchBody, request: randomThermostat)
    }
    let singleTwin = try Wrk.run(
        port: wrkPort, connections: 4, seconds: 10, method: "PATCH", body: patchBody,
        request: "return wrk.format(nil, \"/digitaltwins/thermo-0\")"
    )
    let singleTwinPerSecond = singleTwin.requestsPerSecond

    let results: [(String, Double, String)] =
        [
            ("GET twin p50", get.p50Milliseconds, "ms"),
            ("GET twin p99", get.p99Milliseconds, "ms (goal < 2)"),
        ]
        + zip(patchClients, patches).map { clients, result in
            ("PATCH, \(clients) clients", result.requestsPerSecond, "patches/s (goal ≥ 5,000), p99 \(result.p99Milliseconds) ms")
        } + [
            ("incoming relationships p99", incoming.p99Milliseconds, "ms (goal < 1)"),
            ("JOIN on $dtId p99", join.percentile(99), "ms (room by $dtId)"),
            ("JOIN on $dtId + property p99", joinWithTargetProperty.percentile(99), "ms (room by $dtId, Thermostat.Temperature > 15)"),
            (
                "JOIN on a property p99", joinOnProperty.percentile(99),
                "ms (Room.currentTemp = n: scans every twin; \(joinOnProperty.milliseconds.count) queries)"
            ),
            ("PATCH one twin, 4 clients", singleTwinPerSecond, "patches/s (goal ≥ 2,000)"),
        ]
    print("")
    for (name, value, unit) in results {
        print("\(name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%10.2f", value)) \(unit)")
    }
    var summary: [String: Double] = [
        "twins": Double(rooms * 2), "relationships": Double(rooms * 2),
        "get_p50_ms": get.p50Milliseconds, "get_p99_ms": get.p99Milliseconds,
        "incoming_p99_ms": incoming.p99Milliseconds, "join_query_p99_ms": join.percentile(99),
        "join_dtid_and_property_query_p99_ms": joinWithTargetProperty.percentile(99), "join_property_query_p99_ms": joinOnProperty.percentile(99),
        "single_twin_patches_per_s": singleTwinPerSecond.rounded(), "instances": Double(instances),
    ]
    for (clients, result) in zip(patchClients, patches) {
        summary["patches_per_s_\(clients)_clients"] = result.requestsPerSecond.rounded()
    }
    print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))
}

func seedModels() throws -> JSONValue {
    let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
    return .array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) })
}
