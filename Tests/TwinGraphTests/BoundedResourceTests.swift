import Dispatch
import Foundation
import GRDB
import Testing
import TwinflowCodec
import TwinflowTestSupport

@testable import TwinGraph

/// Memory and pauses stay bounded: the parsed-twin cache by bytes, the write queue by count,
/// queries by the page, purges by the step.
@Suite struct BoundedResourceTests {
    @Test func theParsedTwinCacheStaysWithinItsBytes() {
        let cache = ParsedTwinCache(capacityBytes: 64 * 1024)
        let twins = (0..<2000).map { index in
            StoredTwin(
                id: "twin-\(index)", model: "dtmi:x:T;1", version: 1,
                document: ["$dtId": .string("twin-\(index)"), "Note": .string(String(repeating: "n", count: 100))])
        }
        for twin in twins { cache.remember(twin, revision: 1, lastSequence: 1) }
        let size = cache.size
        #expect(size.bytes <= 64 * 1024)
        #expect(size.bytes > 32 * 1024, "it fills up to its bound")
        #expect(size.twins < 2000 && size.twins > 100, "\(size)")
        #expect(cache.latest("twin-1999") != nil, "the newest stays")
        #expect(cache.latest("twin-0") == nil, "the oldest went first")

        // A twin evicted and cached again is not evicted early for its old place in the order.
        cache.remember(twins[0], revision: 2, lastSequence: 2)
        for twin in twins[1990..<2000] { cache.remember(twin, revision: 3, lastSequence: 3) }
        #expect(cache.latest("twin-0")?.revision == 2)
        #expect(ParsedTwinCache.footprint(of: ["a": "bc"]) == 64 + 48 + 1 + 16 + 2)
    }

    @Test func theWriteQueueMakesCallersWaitWhenFull() async throws {
        let directory = ScratchDirectory.make("batcher")
        let store = try SQLiteTwinStore(path: directory.appending(path: "twins.sqlite").path)
        let batcher = WriteBatcher(store: store, maximumQueued: 4, committed: {})
        let gate = DispatchSemaphore(value: 0)
        let writing = Shared(false)
        let blocking = Task {
            try await batcher.perform { _ in
                writing.withLock { $0 = true }
                gate.wait()
                return -1
            }
        }
        #expect(await eventually { writing.value }, "the blocking write holds the writer")
        let callers = (0..<20).map { index in Task { try await batcher.perform { _ in index } } }
        #expect(await eventually { batcher.queued.callersWaiting == 16 }, "\(batcher.queued)")
        #expect(batcher.queued.writes == 4, "the queue holds no more than its bound")
        gate.signal()
        _ = try await blocking.value
        var results: [Int] = []
        for caller in callers { results.append(try #require(try await caller.value as? Int)) }
        #expect(results == Array(0..<20), "every caller's write ran and answered")
        #expect(batcher.queued.writes == 0 && batcher.queued.callersWaiting == 0)
    }

    @Test func countAndContinuationWalkTheTwinsOnce() async throws {
        let fixture = try await GraphFixture.make("seed")
        let graph = fixture.graph
        for index in 0..<250 {
            try await graph.putTwin(
                String(format: "t%03d", index),
                body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": .integer(Int64(index))])
        }
        let count = try await graph.query("SELECT COUNT() FROM DIGITALTWINS T WHERE T.Temperature >= 100")
        #expect(count.value == [["COUNT": 150]])
        #expect(count.continuationToken == nil)

        var ids: [String] = []
        var page = try await graph.query("SELECT T.$dtId AS id FROM DIGITALTWINS T", pageSize: 100)
        var pages = [page.value.count]
        ids += page.value.compactMap { $0["id"]?.stringValue }
        while let token = page.continuationToken {
            page = try await graph.query(nil, continuationToken: token, pageSize: 100)
            pages.append(page.value.count)
            ids += page.value.compactMap { $0["id"]?.stringValue }
        }
        #expect(pages == [100, 100, 50])
        #expect(ids == (0..<250).map { String(format: "t%03d", $0) }, "in order, each once")

        var top = try await graph.query("SELECT TOP(150) T.$dtId AS id FROM DIGITALTWINS T", pageSize: 100)
        #expect(top.value.count == 100)
        let token = try #require(top.continuationToken)
        top = try await graph.query(nil, continuationToken: token, pageSize: 100)
        #expect(top.value.count == 50)
        #expect(top.value.first?["id"] == "t100")
        #expect(top.continuationToken == nil, "TOP ends the query")

        await expectServiceError("BadRequest", status: 400) {
            _ = try await graph.query(nil, continuationToken: "bm90IGEgdG9rZW4=")
        }
    }

    @Test func aJoinResumesWithinTheRowsOfOneTwin() async throws {
        let fixture = try await GraphFixture.seed()
        let graph = fixture.graph
        for index in 2...5 {
            try await graph.putTwin(
                "thermo_000\(index)", body: ["$metadata": ["$model": "dtmi:contosocom:DigitalTwins:Thermostat;1"], "Temperature": 20])
        }
        let rooms = try await graph.query(
            "SELECT COUNT() FROM DIGITALTWINS Room JOIN T RELATED Room.rel_has_thermostat WHERE Room.$dtId = 'Room_01'")
        #expect(rooms.value == [["COUNT": 1]])
        var page = try await graph.query(
            "SELECT T.$dtId AS id FROM DIGITALTWINS T WHERE IS_OF_MODEL('dtmi:contosocom:DigitalTwins:Thermostat;1')", pageSize: 2)
        var ids = page.value.compactMap { $0["id"]?.stringValue }
        while let token = page.continuationToken {
            page = try await graph.query(nil, continuationToken: token, pageSize: 2)
            ids += page.value.compactMap { $0["id"]?.stringValue }
        }
        #expect(ids == ["thermo_0001", "thermo_0002", "thermo_0003", "thermo_0004", "thermo_0005"])
    }

    @Test func expiredKeysAreForgottenInShortSteps() async throws {
        let fixture = try await GraphFixture.seed()
        let graph = fixture.graph
        let commands = (0..<5000).map { index in
            TwinCommand(
                id: "c\(index)", twinID: "thermo_0001",
                patch: try! JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": .integer(Int64(index))]]))
        }
        _ = try await graph.apply(commands)
        let purge = try await graph.forgetIdempotencyKeys(recordedBefore: "9999-01-01T00:00:00.000Z")
        #expect(purge.forgotten == 5000)
        #expect(purge.steps == 3, "2,000 keys a step")
        #expect(try await graph.forgetIdempotencyKeys(recordedBefore: "9999-01-01T00:00:00.000Z") == KeyPurge())
        let replayed = try await graph.apply([commands[0]])
        guard case .applied? = replayed.first else {
            Issue.record("a forgotten id applies again: \(replayed)")
            return
        }
    }

    /// A batch of commands that meets a full disk fails whole, to be tried again; no command of it
    /// is refused (and dead-lettered) for what the disk did. Once there is room, the same batch applies.
    @Test func commandsMeetingAFullDiskFailTheBatchAndApplyOnceThereIsRoom() async throws {
        let fixture = try await GraphFixture.seed()
        let store = try #require(fixture.graph.store as? SQLiteTwinStore)
        let commands = try (0..<2000).map { index in
            TwinCommand(
                id: "disk-\(index)", twinID: "thermo_0001",
                patch: try JSONPatch(json: [["op": "replace", "path": "/Temperature", "value": .double(Double(index))]]))
        }
        try await store.capPages(at: try await store.pageCount())
        do {
            let outcomes = try await fixture.graph.apply(commands)
            Issue.record("the batch went through a full disk: \(outcomes.prefix(3))")
        } catch let error as DatabaseError {
            #expect(error.resultCode == .SQLITE_FULL, "\(error)")
        }
        try await store.capPages(at: nil)
        let outcomes = try await fixture.graph.apply(commands)
        #expect(outcomes.allSatisfy { if case .applied = $0 { true } else { false } }, "\(outcomes.prefix(3))")
        #expect(try await fixture.graph.twin("thermo_0001").document["Temperature"] == 1999)
    }
}
