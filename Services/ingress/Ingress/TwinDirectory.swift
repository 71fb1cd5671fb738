import Foundation
import Logging
import Synchronization
import TwinGraph
import TwinflowCodec
import TwinflowRuntime

/// The twin a device's messages go to, as the mapping and twin-service said.
public struct TwinTarget: Sendable {
    public var twinID: String
    /// The twin's model, with the models it depends on, for checking values; `nil` when ingress does
    /// not ask twin-service (the mapping sets no properties) or twin-service does not know the model.
    public var model: CheckedModel?
    /// The twin's paths that held a value when it was read, or were set by ingress since: a value
    /// for any other path is sent as `add`, so the first reading lands.
    public var setPaths: Set<String>
}

/// A twin's model as twin-service knows it, ready to check values against. A class: every twin
/// of the model shares it, and a target is copied for every message without copying the model set.
public final class CheckedModel: Sendable {
    public let id: String
    /// `id` parsed once, not for every value checked.
    public let dtmi: DTMI?
    public let models: ModelSet

    public init(id: String, models: ModelSet) {
        self.id = id
        self.dtmi = DTMI(id)
        self.models = models
    }
}

/// Which twin each device is: the mapping's table, twins found through twin-service's query API by
/// their device-ID property, or the twin of the device's own ID; with the twin's model (for checking
/// values) and which of its properties are set.
///
/// Answers are cached. A device found no twin for is asked about again at most every
/// `missRecheck` (so a flood of unknown devices costs twin-service one query each per interval); a
/// device found is read again after `refresh`, in case its twin was replaced or the property that
/// names the device moved. A batch's new devices are looked up together, in queries of up to 100
/// IDs, `concurrentLookups` at a time (one request per twin would cost seconds for 10,000 devices). twin-service not answering
/// is an error: the batch is handled again once it does, nothing is dead-lettered for it.
public final class TwinDirectory: Sendable {
    private enum Entry {
        case found(TwinTarget, readAt: ContinuousClock.Instant)
        case missing(checkedAt: ContinuousClock.Instant)
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var models: [String: CheckedModel] = [:]
        /// Models whose definitions twin-service would not give or ingress cannot read, and since
        /// when: their twins' values go unchecked here (twin-service checks them when it applies the
        /// patch) until the model is asked about again after `refresh`.
        var unreadableModels: [String: ContinuousClock.Instant] = [:]
        /// The mapping version the entries were found under.
        var mappingVersion = -1
    }

    private let client: TwinsClient
    private let missRecheck: Duration
    private let refresh: Duration
    private let concurrentLookups: Int
    private let logger: Logger
    private let state = Mutex(State())

    public init(
        client: TwinsClient, missRecheck: Duration = .seconds(10), refresh: Duration = .seconds(60), concurrentLookups: Int = 4,
        logger: Logger = Logger(label: "twinflow.ingress")
    ) {
        self.client = client
        self.logger = logger
        self.missRecheck = missRecheck
        self.refresh = refresh
        self.concurrentLookups = concurrentLookups
    }

    /// The twin of each device (absent: no twin), looking up the devices not known or due again.
    public func targets(
        for devices: Set<String>, mapping: IngressMapping, version: Int
    ) async throws(TwinsClientError) -> [String: TwinTarget] {
        let now = ContinuousClock.now
        var targets: [String: TwinTarget] = [:]
        var due: [String] = []
        state.withLock { state in
            if state.mappingVersion != version {
                state.entries.removeAll()
                state.mappingVersion = version
            }
            for device in devices {
                switch state.entries[device] {
                case .found(let target, let readAt)?:
                    targets[device] = target
                    if now - readAt >= refresh { due.append(device) }
                case .missing(let checkedAt)?:
                    if now - checkedAt >= missRecheck { due.append(device) }
                case nil:
                    due.append(device)
                }
            }
        }
        guard !due.isEmpty else { return targets }
        let found = try await lookUp(due, mapping: mapping)
        state.withLock { state in
            guard state.mappingVersion == version else { return }
            for device in due {
                if let target = found[device] {
                    state.entries[device] = .found(target, readAt: now)
                } else {
                    state.entries[device] = .missing(checkedAt: now)
                }
            }
        }
        for device in due { targets[device] = found[device] }
        return targets
    }

    /// Notes paths ingress set, so later values for them are sent as `replace`.
    public func noteSet(_ paths: [String: Set<String>]) {
        guard !paths.isEmpty else { return }
        state.withLock { state in
            for (device, set) in paths {
                guard case .found(var target, let readAt)? = state.entries[device] else { continue }
                target.setPaths.formUnion(set)
                state.entries[device] = .found(target, readAt: readAt)
            }
        }
    }

    /// Looks the devices up in queries of up to ``queryChunk`` IDs each (twin-service answers
    /// `$dtId IN […]` from its index), `concurrentLookups` at a time: first among the twins naming
    /// them in the device-ID property, then as the twins the table or their own ID names. A twin ID
    /// no query can carry (too long for one) is read by itself; a device ID no query can carry has
    /// no twin by the device-ID property.
    private func lookUp(_ devices: [String], mapping: IngressMapping) async throws(TwinsClientError) -> [String: TwinTarget] {
        var found: [String: TwinTarget] = [:]
        if let property = mapping.deviceIDProperty {
            let unlisted = devices.filter { mapping.devices[$0] == nil }
            for twin in try await queries(over: unlisted, property: property).twins.sorted(by: { Self.twinID($0) < Self.twinID($1) }) {
                // Two twins naming one device is a modelling error; the first by ID wins, the same one every time.
                guard let device = twin[property]?.stringValue, found[device] == nil else { continue }
                found[device] = try await target(twin)
            }
        }
        var devicesByTwin: [String: [String]] = [:]
        for device in devices where found[device] == nil {
            if let twinID = mapping.devices[device] ?? (mapping.unlistedDevices == .sameID ? device : nil) {
                devicesByTwin[twinID, default: []].append(device)
            }
        }
        var (twins, unasked) = try await queries(over: Array(devicesByTwin.keys), property: "$dtId")
        for twinID in unasked {
            if let twin = try await readTwin(twinID) { twins.append(twin) }
        }
        for twin in twins {
            let target = try await target(twin)
            for device in devicesByTwin[target.twinID] ?? [] { found[device] = target }
        }
        return found
    }

    static let queryChunk = 100
    /// The longest query twin-service takes, as ADT: 8,000 characters.
    static let maximumQueryLength = 8_000

    /// Every twin whose `property` is one of `values`, and the values not asked about: those no
    /// query can carry, and those of a query twin-service refused (an answer that will not change;
    /// the batch waits only for twin-service to answer).
    private func queries(over values: [String], property: String) async throws(TwinsClientError) -> (twins: [JSONValue], unasked: [String]) {
        let (texts, unasked) = Self.queryTexts(property: property, values: values)
        enum Outcome: Sendable {
            case twins([JSONValue])
            case refused([String], TwinsClientError)
        }
        do {
            return try await withThrowingTaskGroup(of: Outcome.self) { group in
                var results: [JSONValue] = []
                var refused: [String] = []
                var queue = texts[...]
                var running = 0
                func fill() {
                    while running < concurrentLookups, let (query, chunk) = queue.popFirst() {
                        running += 1
                        group.addTask {
                            do {
                                return .twins(try await self.client.query(query))
                            } catch let error as TwinsClientError where error.isPermanent {
                                return .refused(chunk, error)
                            }
                        }
                    }
                }
                fill()
                while let outcome = try await group.next() {
                    running -= 1
                    switch outcome {
                    case .twins(let twins): results += twins
                    case .refused(let chunk, let error) where chunk.count > 1:
                        // One value twin-service cannot take spoils its chunk: each is asked about alone.
                        logger.warning(
                            "twin-service refused a lookup; its devices are asked about one by one",
                            metadata: ["property": "\(property)", "devices": "\(chunk.count)", "error": .error(error)])
                        queue += chunk.flatMap { Self.queryTexts(property: property, values: [$0]).queries }
                    case .refused(let chunk, let error):
                        logger.warning(
                            "twin-service refused a device's lookup",
                            metadata: ["property": "\(property)", "device": "\(chunk[0].prefix(200))", "error": .error(error)])
                        refused += chunk
                    }
                    fill()
                }
                return (results, unasked + refused)
            }
        } catch let error as TwinsClientError {
            throw error
        } catch {
            throw TwinsClientError(description: "\(error)")
        }
    }

    /// The queries asking for the twins whose `property` is one of `values`, each with the values it
    /// carries: at most ``queryChunk`` values and ``maximumQueryLength`` characters a query. Values
    /// that cannot be written in a query (a quote, a backslash, too long for one) are left out.
    static func queryTexts(property: String, values: [String]) -> (queries: [(String, [String])], left: [String]) {
        let head = "SELECT * FROM DIGITALTWINS T WHERE T.\(property) IN ["
        let room = maximumQueryLength - head.count - 1
        var queries: [(String, [String])] = []
        var left: [String] = []
        var chunk: [String] = []
        var list = ""
        var length = 0
        func close() {
            guard !chunk.isEmpty else { return }
            queries.append((head + list + "]", chunk))
            chunk.removeAll()
            list = ""
            length = 0
        }
        for value in values {
            // A character count of joined text is at most the sum of the parts' counts.
            guard let literal = literal(value), literal.count <= room else {
                left.append(value)
                continue
            }
            if chunk.count == queryChunk || length + (chunk.isEmpty ? 0 : 1) + literal.count > room { close() }
            list += chunk.isEmpty ? literal : "," + literal
            length += (chunk.isEmpty ? 0 : 1) + literal.count
            chunk.append(value)
        }
        close()
        return (queries, left)
    }

    /// `GET` of one twin; a twin-service refusal (an ID it cannot take) counts as no twin.
    private func readTwin(_ id: String) async throws(TwinsClientError) -> JSONValue? {
        do {
            return try await client.twin(id)
        } catch let error where error.isPermanent {
            logger.warning(
                "twin-service refused to read a twin; its devices have no twin", metadata: ["twin": "\(id.prefix(200))", "error": .error(error)])
            return nil
        }
    }

    /// `id` as a query's string literal, its quotes and backslashes escaped with a backslash; `nil`
    /// when a mark would join a quote or backslash into one character with it.
    static func literal(_ id: String) -> String? {
        let escaped = id.replacing("\\", with: "\\\\").replacing("'", with: "\\'")
        let literal = "'\(escaped)'"
        // twin-service reads a query by characters: a backslash or quote joined with a mark into one
        // character would no longer escape or close anything.
        let joined = literal.contains { character in
            character.unicodeScalars.count > 1 && character.unicodeScalars.contains { $0 == "\\" || $0 == "'" }
        }
        return joined ? nil : literal
    }

    private static func twinID(_ twin: JSONValue) -> String { twin["$dtId"]?.stringValue ?? "" }

    private func target(_ twin: JSONValue) async throws(TwinsClientError) -> TwinTarget {
        let twinID = Self.twinID(twin)
        var paths: Set<String> = []
        for (name, value) in twin.objectValue ?? [:] where !name.hasPrefix("$") {
            paths.insert("/" + name)
            // Members of a component are set paths too (`/sensor/Humidity`).
            guard case .object(let members) = value else { continue }
            for member in members.keys where !member.hasPrefix("$") {
                paths.insert(JSONPointer(tokens: [name, member]).description)
            }
        }
        guard let modelID = twin["$metadata"]?["$model"]?.stringValue else {
            return TwinTarget(twinID: twinID, model: nil, setPaths: paths)
        }
        return TwinTarget(twinID: twinID, model: try await model(modelID), setPaths: paths)
    }

    private func model(_ id: String) async throws(TwinsClientError) -> CheckedModel? {
        let now = ContinuousClock.now
        let known = state.withLock { state in (state.models[id], state.unreadableModels[id].map { now - $0 < refresh } ?? false) }
        if let model = known.0 { return model }
        if known.1 { return nil }
        var models = ModelSet()
        do {
            guard let definitions = try await client.modelDefinitions(dependenciesFor: id) else { return nil }
            try models.add(try DTDLParser.parseUpload(.array(definitions)))
        } catch {
            if let error = error as? TwinsClientError, !error.isPermanent { throw error }
            logger.warning(
                "a twin's model cannot be read; its values are left for twin-service to check", metadata: ["model": "\(id)", "error": .error(error)])
            state.withLock { $0.unreadableModels[id] = now }
            return nil
        }
        let checked = CheckedModel(id: id, models: models)
        state.withLock { $0.models[id] = checked }
        return checked
    }
}
