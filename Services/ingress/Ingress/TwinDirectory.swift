import Foundation
import Synchronization
import TwinGraph
import TwinflowCodec

/// The twin a device's messages go to, as the mapping and twin-service said.
public struct TwinTarget: Sendable {
    public var twinID: String
    /// The twin's model, with the models it depends on, for checking values; `nil` when the mapping
    /// sets no properties (twin-service was not asked).
    public var model: CheckedModel?
    /// The twin's paths that held a value when it was read, or were set by ingress since: a value
    /// for any other path is sent as `add`, so the first reading lands.
    public var setPaths: Set<String>
}

/// A twin's model as twin-service knows it, ready to check values against.
public struct CheckedModel: Sendable {
    public var id: String
    public var models: ModelSet
}

/// Which twin each device is: the mapping's table, twins found through twin-service's query API by
/// their device-ID property, or the twin of the device's own ID; with the twin's model (for checking
/// values) and which of its properties are set.
///
/// Answers are cached. A device found no twin for is asked about again at most every
/// `missRecheck` (so a flood of unknown devices costs twin-service one query each per interval); a
/// device found is read again after `refresh`, in case its twin was replaced or the property that
/// names the device moved. Lookups run `concurrentLookups` at a time. twin-service not answering
/// is an error: the batch is handled again once it does, nothing is dead-lettered for it.
public final class TwinDirectory: Sendable {
    private enum Entry {
        case found(TwinTarget, readAt: ContinuousClock.Instant)
        case missing(checkedAt: ContinuousClock.Instant)
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var models: [String: CheckedModel] = [:]
        /// The mapping version the entries were found under.
        var mappingVersion = -1
    }

    private let client: TwinsClient
    private let missRecheck: Duration
    private let refresh: Duration
    private let concurrentLookups: Int
    private let state = Mutex(State())

    public init(client: TwinsClient, missRecheck: Duration = .seconds(10), refresh: Duration = .seconds(60), concurrentLookups: Int = 16) {
        self.client = client
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

    private func lookUp(_ devices: [String], mapping: IngressMapping) async throws(TwinsClientError) -> [String: TwinTarget] {
        do {
            return try await withThrowingTaskGroup(of: (String, TwinTarget?).self) { group in
                var found: [String: TwinTarget] = [:]
                var next = devices.makeIterator()
                func start() -> Bool {
                    guard let device = next.next() else { return false }
                    group.addTask { (device, try await self.lookUp(device, mapping: mapping)) }
                    return true
                }
                for _ in 0..<concurrentLookups where !start() { break }
                while let (device, target) = try await group.next() {
                    if let target { found[device] = target }
                    _ = start()
                }
                return found
            }
        } catch let error as TwinsClientError {
            throw error
        } catch {
            throw TwinsClientError(description: "\(error)")
        }
    }

    private func lookUp(_ device: String, mapping: IngressMapping) async throws(TwinsClientError) -> TwinTarget? {
        let needsTwin = !mapping.properties.isEmpty
        if let twinID = mapping.devices[device] {
            return needsTwin ? try await read(twinID) : TwinTarget(twinID: twinID, model: nil, setPaths: [])
        }
        if let property = mapping.deviceIDProperty {
            let query = "SELECT * FROM DIGITALTWINS T WHERE T.\(property) = '\(device.replacingOccurrences(of: "'", with: "\\'"))'"
            let twins = try await client.query(query)
            // Two twins naming one device is a modelling error; the first by ID wins, the same one every time.
            if let twin = twins.min(by: { ($0["$dtId"]?.stringValue ?? "") < ($1["$dtId"]?.stringValue ?? "") }),
                let twinID = twin["$dtId"]?.stringValue
            {
                return try await target(twinID, twin: twin, needsModel: needsTwin)
            }
        }
        guard mapping.unlistedDevices == .sameID else { return nil }
        return needsTwin ? try await read(device) : TwinTarget(twinID: device, model: nil, setPaths: [])
    }

    private func read(_ twinID: String) async throws(TwinsClientError) -> TwinTarget? {
        guard let twin = try await client.twin(twinID) else { return nil }
        return try await target(twinID, twin: twin, needsModel: true)
    }

    private func target(_ twinID: String, twin: JSONValue, needsModel: Bool) async throws(TwinsClientError) -> TwinTarget {
        var paths: Set<String> = []
        for (name, value) in twin.objectValue ?? [:] where !name.hasPrefix("$") {
            paths.insert("/" + name)
            // Members of a component are set paths too (`/sensor/Humidity`).
            guard case .object(let members) = value else { continue }
            for member in members.keys where !member.hasPrefix("$") {
                paths.insert(JSONPointer(tokens: [name, member]).description)
            }
        }
        guard needsModel, let modelID = twin["$metadata"]?["$model"]?.stringValue else {
            return TwinTarget(twinID: twinID, model: nil, setPaths: paths)
        }
        return TwinTarget(twinID: twinID, model: try await model(modelID), setPaths: paths)
    }

    private func model(_ id: String) async throws(TwinsClientError) -> CheckedModel? {
        if let known = state.withLock({ $0.models[id] }) { return known }
        guard let definitions = try await client.modelDefinitions(dependenciesFor: id) else { return nil }
        var models = ModelSet()
        do {
            try models.add(try DTDLParser.parseUpload(.array(definitions)))
        } catch {
            throw TwinsClientError(description: "twin-service's model \(id) cannot be read: \(error)")
        }
        let checked = CheckedModel(id: id, models: models)
        state.withLock { $0.models[id] = checked }
        return checked
    }
}
