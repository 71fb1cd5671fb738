import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import TwinflowCodec

/// twin-bench: loads 100,000 twins and 100,000 relationships into a twin-service (the release
/// binary beside this one, on a fresh store), then measures its REST API.
///
///     swift build -c release --product twin-service --product twin-bench && .build/release/twin-bench
let rooms = Int(ProcessInfo.processInfo.environment["TWIN_BENCH_ROOMS"] ?? "") ?? 50_000
let service = try TwinServiceChild()
defer { service.stop() }
try await service.waitUntilReady()
print("twin-bench: \(rooms * 2) twins, \(rooms * 2) relationships, twin-service on port \(service.port)")

let clients = try await ClientPool(port: service.port, count: 8)
let models = try seedModels()
try await clients.expect(.created, clients.first.post("/models", body: models))

var timer = ContinuousClock.now
try await clients.forEach(0..<rooms) { client, index in
    try await clients.expect(.ok, client.put("/digitaltwins/thermo-\(index)", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20]))
    try await clients.expect(.ok, client.put("/digitaltwins/room-\(index)", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Room;1"], "currentTemp": 20]))
}
let twinLoad = ContinuousClock.now - timer
timer = .now
try await clients.forEach(0..<rooms) { client, index in
    try await clients.expect(.ok, client.put("/digitaltwins/room-\(index)/relationships/own", body: ["$targetId": .string("thermo-\(index)"), "$relationshipName": "rel_has_thermostat"]))
    try await clients.expect(.ok, client.put("/digitaltwins/room-\(index)/relationships/next", body: ["$targetId": .string("thermo-\((index + 1) % rooms)"), "$relationshipName": "rel_has_thermostat"]))
}
let relationshipLoad = ContinuousClock.now - timer
print("loaded twins in \(twinLoad), relationships in \(relationshipLoad)")

let get = try await clients.latencies(count: 10_000, concurrency: 1) { client, _ in
    try await clients.expect(.ok, client.get("/digitaltwins/thermo-\(Int.random(in: 0..<rooms))"))
}
let incoming = try await clients.latencies(count: 10_000, concurrency: 1) { client, _ in
    try await clients.expect(.ok, client.get("/digitaltwins/thermo-\(Int.random(in: 0..<rooms))/incomingrelationships"))
}
let join = try await clients.latencies(count: 2_000, concurrency: 1) { client, _ in
    let query = "SELECT Room, Thermostat FROM DIGITALTWINS Room JOIN Thermostat RELATED Room.rel_has_thermostat WHERE Room.$dtId = 'room-\(Int.random(in: 0..<rooms))'"
    try await clients.expect(.ok, client.post("/query", body: ["query": .string(query)]))
}
timer = .now
let patchCount = 20_000
_ = try await clients.latencies(count: patchCount, concurrency: 8) { client, index in
    try await clients.expect(.noContent, client.patch("/digitaltwins/thermo-\(Int.random(in: 0..<rooms))", body: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(index))]]))
}
let patchesPerSecond = Double(patchCount) / (ContinuousClock.now - timer).seconds
timer = .now
let singleCount = 5_000
_ = try await clients.latencies(count: singleCount, concurrency: 4) { client, index in
    try await clients.expect(.noContent, client.patch("/digitaltwins/thermo-0", body: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(index))]]))
}
let singleTwinPerSecond = Double(singleCount) / (ContinuousClock.now - timer).seconds
try await clients.shutdown()

let results: [(String, Double, String)] = [
    ("GET twin p50", get.percentile(50), "ms"),
    ("GET twin p99", get.percentile(99), "ms (goal < 2)"),
    ("PATCH, 8 clients", patchesPerSecond, "patches/s (goal ≥ 5,000)"),
    ("incoming relationships p99", incoming.percentile(99), "ms (goal < 1)"),
    ("one-hop JOIN query p99", join.percentile(99), "ms"),
    ("PATCH one twin, 4 clients", singleTwinPerSecond, "patches/s (goal ≥ 2,000)"),
]
print("")
for (name, value, unit) in results {
    print("\(name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%10.2f", value)) \(unit)")
}
let summary: [String: Double] = [
    "twins": Double(rooms * 2), "relationships": Double(rooms * 2),
    "get_p50_ms": get.percentile(50), "get_p99_ms": get.percentile(99), "patches_per_s": patchesPerSecond.rounded(),
    "incoming_p99_ms": incoming.percentile(99), "join_query_p99_ms": join.percentile(99),
    "single_twin_patches_per_s": singleTwinPerSecond.rounded(),
]
print(String(decoding: try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys]), as: UTF8.self))

func seedModels() throws -> JSONValue {
    let folder = URL(filePath: #filePath).deletingLastPathComponent().appending(path: "../../deploy/models/seed").standardized
    let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
    return .array(try files.map { try JSONValue.parse(Array(try Data(contentsOf: folder.appending(path: $0)))) })
}
