import Foundation
import Testing
import TwinGraph
import TwinflowCodec
import TwinflowKafka
import TwinflowTestSupport

@testable import Propagator

/// The propagator's decisions on notifications, against a relationship view held in memory.
struct PropagationTests {
    static let thermostat = "dtmi:contosocom:DigitalTwins:Thermostat;1"
    static let room = "dtmi:contosocom:DigitalTwins:Room;1"

    /// The seed's models, a view with `rooms` (room → its thermostats by `rel_has_thermostat`), and
    /// a propagation by `rules`.
    struct Scenario {
        var propagation: Propagation
        var view: RelationshipView.State
        var memory: [String: Int64] = [:]
        let models: ModelSet
        let tracked: Set<JSONPointer>
        let names: Set<String>

        init(rules: PropagationRules = .seed, hopLimit: Int = 8, rooms: [String: [String]]) throws {
            var models = ModelSet()
            try models.add(try DTDLParser.parseUpload(try Fixtures.upload("seed")))
            self.models = models
            self.tracked = rules.trackedProperties
            self.names = rules.relationshipNames
            self.propagation = Propagation(rules: rules.rules, hopLimit: hopLimit)
            let view = RelationshipView(names: rules.relationshipNames, tracked: tracked)
            var relationships: [TwinNotification.Relationship] = []
            var twins: [String: JSONValue] = [:]
            for (room, thermostats) in rooms {
                twins[room] = ["$dtId": .string(room), "$metadata": ["$model": .string(PropagationTests.room)]]
                for thermostat in thermostats {
                    relationships.append(.init(id: "\(room)-\(thermostat)", name: "rel_has_thermostat", sourceID: room, targetID: thermostat))
                    twins[thermostat] = ["$dtId": .string(thermostat), "$metadata": ["$model": .string(PropagationTests.thermostat)]]
                }
            }
            view.load(relationships: relationships, twins: twins)
            self.view = view.withState { $0 }
        }

        mutating func decide(_ notifications: [TwinNotification]) -> Propagation.Outcome {
            var lookup = ModelLookup(models)
            return propagation.decide(
                Array(notifications.enumerated().map { ($0.offset, $0.element) }), view: &view, memory: &memory, models: &lookup, tracked: tracked,
                now: .now)
        }

        /// The partitions in `partitions` given to this instance, each twin on the partition `partitionOf` names.
        mutating func reconcile(_ partitions: Set<Int32>, partitionOf: [String: Int32], pass: String = "p1") -> [TwinCommand] {
            var lookup = ModelLookup(models)
            let parents = propagation.aggregateParents(in: view).filter { partitionOf[$0].map(partitions.contains) ?? false }.sorted()
            return propagation.reconcile(parents, pass: pass, view: &view, models: &lookup, now: .now)
        }

        /// Notifications the view's follower read: applied, then the parents this instance checks worked out again.
        mutating func followed(_ notifications: [TwinNotification]) -> [TwinCommand] {
            var lookup = ModelLookup(models)
            return propagation.apply(followed: notifications, to: &view, tracked: tracked, names: names, models: &lookup, now: .now)
        }
    }

    static func update(
        _ twin: String, sequence: Int64, hop: Int = 0, model: String = thermostat, _ operations: [JSONPatch.Operation]
    )
        -> TwinNotification
    {
        let data: JSONValue = ["modelId": .string(model), "patch": JSONPatch(operations).json]
        let event = CloudEvent(
            attributes: CloudEventAttributes(
                id: "event-\(twin)-\(sequence)", type: "Microsoft.DigitalTwins.Twin.Update", source: "twinflow", subject: twin,
                traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", sequence: String(sequence),
                extensions: hop > 0 ? [TwinNotification.hopExtension: String(hop)] : [:]),
            data: data)
        return try! TwinNotification(decoding: event.kafkaMessage(topic: "t", key: twin).value)
    }

    static func temperature(_ twin: String, _ value: JSONValue, sequence: Int64, hop: Int = 0, op: String = "replace") -> TwinNotification {
        let path = JSONPointer(tokens: ["Temperature"])
        return update(twin, sequence: sequence, hop: hop, [op == "add" ? .add(path: path, value: value) : .replace(path: path, value: value)])
    }

    /// A `rel_has_thermostat` relationship's notification of `type` (Create, Delete).
    static func relationship(_ type: String, id: String, source: String, target: String, sequence: Int64? = nil) -> TwinNotification {
        let event = CloudEvent(
            attributes: CloudEventAttributes(
                id: "\(type)-\(source)-\(id)-\(sequence ?? 0)", type: type, source: "twinflow", subject: "\(source)/relationships/\(id)",
                sequence: sequence.map(String.init)),
            data: [
                "$relationshipId": .string(id), "$relationshipName": "rel_has_thermostat", "$sourceId": .string(source), "$targetId": .string(target),
            ])
        return try! TwinNotification(event)
    }

    /// The rule from each Thermostat's `/Temperature` to its room's `/currentTemp`, of `kind`.
    static func thermostatsToCurrentTemp(_ kind: PropagationRule.Kind) -> PropagationRule {
        PropagationRule(
            sourceModel: thermostat, sourceProperty: JSONPointer(tokens: ["Temperature"]), relationship: "rel_has_thermostat",
            targetProperty: JSONPointer(tokens: ["currentTemp"]), kind: kind)
    }

    static func values(_ outcome: Propagation.Outcome) -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for output in outcome.outputs {
            guard case .add(_, let value)? = output.command.patch?.operations.first else { continue }
            values[output.command.twinID] = value
        }
        return values
    }

    @Test func copiesAddAndReplaceToTheParentWithCausationHopTraceAndStableID() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"], "room2": ["t2"]])
        let outcome = scenario.decide([
            Self.temperature("t1", 21.5, sequence: 1, op: "add"), Self.temperature("t2", 19, sequence: 1, hop: 2),
        ])
        #expect(Self.values(outcome) == ["room1": 21.5, "room2": 19])
        let command = try #require(outcome.outputs.first { $0.command.twinID == "room1" }?.command)
        #expect(command.patch == JSONPatch([.add(path: JSONPointer(tokens: ["currentTemp"]), value: 21.5)]))
        #expect(command.causationID == "event-t1-1")
        #expect(command.hop == 1)
        #expect(outcome.outputs.first { $0.command.twinID == "room2" }?.command.hop == 3)
        #expect(command.traceparent?.hasPrefix("00-0af7651916cd43dd8448eb211c80319c-") == true, "the same trace")
        #expect(command.traceparent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a span of its own")
        #expect(command.id == "event-t1-1/\(PropagationRules.seed.rules[0].key)/room1")
        #expect(command.kafkaMessage(topic: "twins.commands").key == Array("room1".utf8), "keyed by the parent")
    }

    @Test func aReplaceOfAWholeObjectHoldingThePropertyCounts() throws {
        let rule = PropagationRule(
            sourceProperty: JSONPointer(tokens: ["Front", "Temperature"]), relationship: "rel_has_thermostat",
            targetProperty: JSONPointer(tokens: ["currentTemp"]))
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([
            Self.update("t1", sequence: 1, [.replace(path: JSONPointer(tokens: ["Front"]), value: ["Temperature": 18.25, "Humidity": 40])])
        ])
        #expect(Self.values(outcome) == ["room1": 18.25])
    }

    @Test func olderChangesOfAChildAreDroppedAndTheParentEndsOnTheNewest() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([
            Self.temperature("t1", 25, sequence: 5), Self.temperature("t1", 23, sequence: 3), Self.temperature("t1", 24, sequence: 4),
        ])
        #expect(outcome.outputs.map(\.command.twinID) == ["room1"])
        #expect(Self.values(outcome) == ["room1": 25])
        #expect(outcome.counts.stale == 2)
        let again = scenario.decide([Self.temperature("t1", 25, sequence: 5)])
        #expect(again.outputs.isEmpty && again.counts.stale == 1, "a redelivered change is stale too")
    }

    @Test func aBatchSendsOneCommandPerParentAndPropertyTheLast() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"], "room2": ["t2"]])
        let outcome = scenario.decide([
            Self.temperature("t1", 20, sequence: 1), Self.temperature("t2", 30, sequence: 1), Self.temperature("t1", 21, sequence: 2),
            Self.temperature("t1", 22, sequence: 3),
        ])
        #expect(outcome.outputs.map(\.command.twinID) == ["room2", "room1"])
        #expect(Self.values(outcome) == ["room1": 22, "room2": 30])
        #expect(outcome.outputs.last?.command.causationID == "event-t1-3", "the command of the last change")
        #expect(outcome.counts.coalesced == 2 && outcome.counts.propagated == 2)
    }

    @Test func nothingIsSentWhenTheParentHoldsTheValueAlready() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        scenario.view.twins["room1"]?.values[JSONPointer(tokens: ["currentTemp"])] = 21
        let outcome = scenario.decide([Self.temperature("t1", 21, sequence: 1)])
        #expect(outcome.outputs.isEmpty)
        #expect(outcome.counts.unchanged == 1)
        let sent = scenario.decide([Self.temperature("t1", 22, sequence: 2)])
        #expect(Self.values(sent) == ["room1": 22])
        let back = scenario.decide([Self.temperature("t1", 21, sequence: 3)])
        #expect(Self.values(back) == ["room1": 21], "22 is on its way: 21 must follow it, although the view still shows 21")
    }

    /// A thermostat reading 20, 21, 20 in three batches sends the room three commands; when the room
    /// takes the first 20 the other two are still on their way, so a later 21 of the thermostat must
    /// be sent although the view (21, after the second) shows it: the third (20) lands after it.
    @Test func aValueTheParentShowsIsSentWhenAnotherIsStillOnItsWay() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        func room(_ value: JSONValue, sequence: Int64) -> TwinNotification {
            Self.update("room1", sequence: sequence, hop: 1, model: Self.room, [.replace(path: currentTemp, value: value)])
        }
        #expect(Self.values(scenario.decide([Self.temperature("t1", 20, sequence: 1)])) == ["room1": 20])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 21, sequence: 2)])) == ["room1": 21])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 20, sequence: 3)])) == ["room1": 20])
        _ = scenario.decide([room(20, sequence: 1)])
        _ = scenario.decide([room(21, sequence: 2)])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 21, sequence: 4)])) == ["room1": 21], "20 is still on its way")
        _ = scenario.decide([room(20, sequence: 3)])
        _ = scenario.decide([room(21, sequence: 4)])
        #expect(scenario.decide([Self.temperature("t1", 21, sequence: 5)]).outputs.isEmpty, "everything landed: the room holds 21")
        #expect(scenario.view.pending.isEmpty)
    }

    /// Relationship IDs are unique per source twin only: two rooms' relationships named `r1` are two
    /// relationships, and deleting one leaves the other.
    @Test func relationshipsOfOneIDFromTwoSourcesAreTwo() throws {
        var scenario = try Scenario(rooms: [:])
        func relationship(_ type: String, _ source: String, _ target: String) -> TwinNotification {
            Self.relationship(type, id: "r1", source: source, target: target)
        }
        _ = scenario.followed([
            relationship("Microsoft.DigitalTwins.Relationship.Create", "room1", "t1"),
            relationship("Microsoft.DigitalTwins.Relationship.Create", "room2", "t2"),
        ])
        let rule = PropagationRules.seed.rules[0]
        #expect(scenario.view.parents(of: "t1", by: rule) == ["room1"])
        #expect(scenario.view.parents(of: "t2", by: rule) == ["room2"])
        _ = scenario.followed([relationship("Microsoft.DigitalTwins.Relationship.Delete", "room2", "t2")])
        #expect(scenario.view.parents(of: "t1", by: rule) == ["room1"])
        #expect(scenario.view.parents(of: "t2", by: rule).isEmpty)
        #expect(scenario.view.relationshipCount == 1)
    }

    /// An aggregate counts only the children of the rule's source model: a fridge related to the
    /// room like its thermostats does not raise its maximum.
    @Test func anAggregateCountsOnlyChildrenOfTheRulesModel() throws {
        let rule = Self.thermostatsToCurrentTemp(.max)
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2"]])
        _ = scenario.followed([
            Self.relationship("Microsoft.DigitalTwins.Relationship.Create", id: "room1-fridge", source: "room1", target: "fridge", sequence: 1),
            Self.temperature("t2", 26, sequence: 1),
            Self.update("fridge", sequence: 1, model: "dtmi:example:Fridge;1", [.add(path: JSONPointer(tokens: ["Temperature"]), value: 40)]),
        ])
        #expect(scenario.view.children(of: "room1", by: rule) == ["t1", "t2", "fridge"])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 21, sequence: 2)])) == ["room1": 26])
    }

    /// An `average` of readings near the largest double is their average, not infinity (their sum).
    @Test func theMeanOfNumbersNearTheLargestDoubleIsFinite() throws {
        #expect(Propagation.mean([1.5e308, 1.5e308, 1.5e308]) == 1.5e308)
        #expect(Propagation.mean([20, 21, 23.5]) == 21.5)
        let rule = Self.thermostatsToCurrentTemp(.average)
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2"]])
        _ = scenario.followed([Self.temperature("t2", 1.5e308, sequence: 1)])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 1.5e308, sequence: 1)])) == ["room1": .double(1.5e308)])
    }

    /// A deleted twin leaves the view (a tombstone of its sequence stays), and neither the
    /// notification of its deletion nor an older change read late on the group's partitions
    /// brings it back.
    @Test func aDeletedTwinLeavesTheView() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        _ = scenario.decide([Self.temperature("t1", 20, sequence: 1)])
        #expect(scenario.view.pending["room1"] != nil)
        let event = CloudEvent(
            attributes: CloudEventAttributes(
                id: "delete-room1", type: "Microsoft.DigitalTwins.Twin.Delete", source: "twinflow", subject: "room1", sequence: "9"),
            data: ["$dtId": "room1", "$metadata": ["$model": .string(Self.room)]])
        let deleted = try TwinNotification(event)
        _ = scenario.followed([deleted])
        _ = scenario.decide([deleted, Self.update("room1", sequence: 5, model: Self.room, [.add(path: currentTemp, value: 20)])])
        #expect(scenario.view.twins["room1"]?.values.isEmpty == true)
        #expect(scenario.view.twins["room1"]?.model == nil)
        #expect(scenario.view.pending["room1"] == nil)
        _ = scenario.decide([Self.update("room1", sequence: 10, model: Self.room, [.add(path: currentTemp, value: 21)])])
        #expect(scenario.view.value(of: "room1", at: currentTemp) == 21, "the twin created again")
    }

    /// The last value sent, not seen taken after the timeout (here at once): sent again unless the
    /// view shows it, as after a repeated command twin-service had applied before.
    @Test func aValueOnItsWayTooLongCountsOnlyWhenTheViewShowsIt() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        scenario.propagation = Propagation(rules: PropagationRules.seed.rules, hopLimit: 8, pendingTimeout: .zero)
        #expect(Self.values(scenario.decide([Self.temperature("t1", 20, sequence: 1)])) == ["room1": 20])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 20, sequence: 2)])) == ["room1": 20], "not seen taken: sent again")
        _ = scenario.decide([Self.update("room1", sequence: 1, hop: 1, model: Self.room, [.replace(path: currentTemp, value: 20)])])
        #expect(scenario.decide([Self.temperature("t1", 20, sequence: 3)]).outputs.isEmpty, "the view shows it")
    }

    @Test func theHopLimitStopsAChangeAndNamesTheTwin() throws {
        var scenario = try Scenario(hopLimit: 3, rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([Self.temperature("t1", 21, sequence: 1, hop: 3)])
        #expect(outcome.outputs.isEmpty)
        #expect(outcome.counts.hopLimited == 1)
        #expect(outcome.hopLimited == ["t1"])
        #expect(Self.values(scenario.decide([Self.temperature("t1", 22, sequence: 2, hop: 2)])) == ["room1": 22], "one step below the limit")
    }

    @Test func aChildWithNoParentIsCountedNotSent() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([Self.temperature("lonely", 21, sequence: 1)])
        #expect(outcome.outputs.isEmpty)
        #expect(outcome.counts.orphans == 1)
        #expect(outcome.orphans == ["lonely"])
    }

    @Test func onlyTheRulesModelAndModelsExtendingItMatch() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([
            Self.update("t1", sequence: 1, model: "dtmi:example:Other;1", [.replace(path: JSONPointer(tokens: ["Temperature"]), value: 30)])
        ])
        #expect(outcome.outputs.isEmpty, "the seed rule names the Thermostat model")
    }

    @Test func averageMinimumAndMaximumOverEveryChildsCurrentValue() throws {
        for (kind, expected) in [(PropagationRule.Kind.average, JSONValue.double(21.5)), (.min, .integer(20)), (.max, .double(23.5))] {
            let rule = Self.thermostatsToCurrentTemp(kind)
            var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2", "t3"]])
            let outcome = scenario.decide([
                Self.temperature("t1", 20, sequence: 1), Self.temperature("t2", 21, sequence: 1), Self.temperature("t3", 23.5, sequence: 1),
            ])
            #expect(outcome.outputs.last?.command.patch?.operations == [.add(path: JSONPointer(tokens: ["currentTemp"]), value: expected)], "\(kind)")
        }
    }

    /// With several instances, a room can take an average worked out before a thermostat's newer
    /// value was read. The instance that reads the room's own changes checks each propagated value
    /// against the thermostats' and sends the right one; once it has read the room, a thermostat's
    /// change its view's follower reads makes it check again. A value set by hand (hop 0) is left.
    @Test func aParentsAggregateIsWorkedOutAgainWhenItMissedAChildsChange() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        let rule = Self.thermostatsToCurrentTemp(.average)
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2"]])
        func room(_ value: JSONValue, sequence: Int64, hop: Int) -> TwinNotification {
            Self.update("room1", sequence: sequence, hop: hop, model: Self.room, [.replace(path: currentTemp, value: value)])
        }
        #expect(Self.values(scenario.decide([Self.temperature("t1", 20, sequence: 1)])) == ["room1": .double(20)])
        #expect(scenario.decide([room(20, sequence: 1, hop: 1)]).outputs.isEmpty, "the room took what its thermostats give it")

        let followed = scenario.followed([Self.temperature("t2", 22, sequence: 1)])
        #expect(followed.map(\.id) == ["event-t2-1/\(rule.key)/room1/recheck/21.0"], "t2 changed on another instance's partition")
        #expect(followed.first?.patch?.operations == [.add(path: currentTemp, value: .double(21))])
        #expect(followed.first?.hop == 1)

        #expect(scenario.decide([room(21, sequence: 2, hop: 1)]).outputs.isEmpty)
        let stale = scenario.decide([room(20, sequence: 3, hop: 1)])
        #expect(Self.values(stale) == ["room1": .double(21)], "another instance's value, made before it read t2's change")
        #expect(stale.counts.rechecked == 1)
        #expect(stale.outputs.first?.command.id == "event-room1-3/\(rule.key)/room1/recheck/21.0")

        #expect(scenario.decide([room(21, sequence: 4, hop: 1)]).outputs.isEmpty)
        #expect(scenario.decide([room(5, sequence: 5, hop: 0)]).outputs.isEmpty, "a value set by hand stays until a thermostat changes")
        #expect(scenario.followed([Self.temperature("t1", 20, sequence: 1)]).isEmpty, "a change read twice gives nothing new")
    }

    /// Partitions given to an instance: their aggregate parents that hold another value than their
    /// children's aggregate get it, whatever set it; those on other partitions, and those that hold
    /// it, get nothing; and every parent there is checked from then on.
    @Test func theAggregateParentsOfGainedPartitionsAreReconciled() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        let rule = Self.thermostatsToCurrentTemp(.max)
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2"], "room2": ["t3"], "room3": ["t4"]])
        let partitionOf: [String: Int32] = ["room1": 0, "room2": 1, "room3": 0]
        _ = scenario.followed([
            Self.temperature("t1", 20, sequence: 1), Self.temperature("t2", 26, sequence: 1), Self.temperature("t3", 19, sequence: 1),
            Self.temperature("t4", 30, sequence: 1),
            Self.update("room1", sequence: 1, model: Self.room, [.add(path: currentTemp, value: 20)]),
            Self.update("room2", sequence: 1, model: Self.room, [.add(path: currentTemp, value: 5)]),
            Self.update("room3", sequence: 1, model: Self.room, [.add(path: currentTemp, value: 30)]),
        ])
        #expect(scenario.view.checkedParents.isEmpty)

        let commands = scenario.reconcile([0], partitionOf: partitionOf)
        #expect(commands.map(\.twinID) == ["room1"], "room2 is on another partition; room3 holds its maximum")
        #expect(commands.first?.patch?.operations == [.add(path: currentTemp, value: .integer(26))])
        #expect(commands.first?.id == "reconcile/p1/\(rule.key)/room1")
        #expect(commands.first?.hop == 1, "its change is checked as a propagated value by the partition's owner")
        #expect(scenario.view.checkedParents == [Propagation.checkedKey(rule, "room1"), Propagation.checkedKey(rule, "room3")])
        #expect(scenario.reconcile([0], partitionOf: partitionOf, pass: "p2").isEmpty, "room1's value is on its way")

        let followed = scenario.followed([Self.temperature("t4", 31, sequence: 2)])
        #expect(followed.map(\.twinID) == ["room3"], "a parent reconciled is checked when a child changes later")
    }

    /// A child that comes, goes or moves changes the aggregate of a parent this instance checks as
    /// soon as the follower reads the relationship's change: both rooms of a move. A relationship's
    /// change the view holds already (read again after a restart) changes nothing. A recheck's ID
    /// carries its value, so the same event read again for another value is not a repeat.
    @Test func aChildThatComesGoesOrMovesChangesTheCheckedParentsAggregate() throws {
        let currentTemp = JSONPointer(tokens: ["currentTemp"])
        let rule = Self.thermostatsToCurrentTemp(.max)
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1", "t2"], "room2": ["t4"]])
        let partitionOf: [String: Int32] = ["room1": 0, "room2": 0]
        func values(_ commands: [TwinCommand]) -> [String: JSONValue] {
            var values: [String: JSONValue] = [:]
            for command in commands {
                if case .add(_, let value)? = command.patch?.operations.first { values[command.twinID] = value }
            }
            return values
        }
        _ = scenario.followed([
            Self.temperature("t1", 20, sequence: 1), Self.temperature("t2", 26, sequence: 1), Self.temperature("t4", 18, sequence: 1),
            Self.update("t3", sequence: 1, [.add(path: JSONPointer(tokens: ["Temperature"]), value: 30)]),
            Self.update("room1", sequence: 1, model: Self.room, [.add(path: currentTemp, value: 26)]),
            Self.update("room2", sequence: 1, model: Self.room, [.add(path: currentTemp, value: 18)]),
        ])
        #expect(scenario.reconcile([0], partitionOf: partitionOf).isEmpty, "both rooms hold their maximum")

        let created = Self.relationship("Microsoft.DigitalTwins.Relationship.Create", id: "r3", source: "room1", target: "t3", sequence: 10)
        let came = scenario.followed([created])
        #expect(values(came) == ["room1": 30])
        #expect(came.first?.id == "\(created.attributes.id)/\(rule.key)/room1/recheck/30")
        #expect(scenario.followed([created]).isEmpty, "the view holds the relationship already")

        // t3 moves from room1 to room2 (the same relationship of room2's is a new one; room1's goes).
        let moved = scenario.followed([
            Self.relationship("Microsoft.DigitalTwins.Relationship.Delete", id: "r3", source: "room1", target: "t3", sequence: 11),
            Self.relationship("Microsoft.DigitalTwins.Relationship.Create", id: "r3", source: "room2", target: "t3", sequence: 12),
        ])
        #expect(values(moved) == ["room1": 26, "room2": 30])
        #expect(scenario.view.children(of: "room1", by: rule) == ["t1", "t2"])
        #expect(scenario.view.children(of: "room2", by: rule) == ["t4", "t3"])

        // A room this instance does not check (another instance's partition) gets nothing from it.
        var unchecked = try Scenario(rules: PropagationRules([rule]), rooms: ["room1": ["t1"]])
        _ = unchecked.followed([
            Self.temperature("t1", 20, sequence: 1), Self.update("t3", sequence: 1, [.add(path: JSONPointer(tokens: ["Temperature"]), value: 30)]),
        ])
        #expect(unchecked.followed([created]).isEmpty)
    }

    /// Parents on partitions this instance lost are no longer checked here (their new owner checks
    /// them): a child's change read by the follower sends them nothing; the others are still checked.
    @Test func parentsOnLostPartitionsAreNoLongerChecked() throws {
        let rule = Self.thermostatsToCurrentTemp(.max)
        let rooms = (1...8).map { "room\($0)" }
        var scenario = try Scenario(rules: PropagationRules([rule]), rooms: Dictionary(uniqueKeysWithValues: rooms.map { ($0, ["t-\($0)"]) }))
        let partitionOf = Dictionary(uniqueKeysWithValues: rooms.map { ($0, KafkaPartitioner.partition(ofKey: $0, partitionCount: 4)) })
        _ = scenario.followed(rooms.map { Self.temperature("t-\($0)", 20, sequence: 1) })
        _ = scenario.reconcile([0, 1, 2, 3], partitionOf: partitionOf)
        #expect(scenario.view.checkedParents.count == rooms.count)

        let lost = partitionOf["room1"]!
        let kept = rooms.filter { partitionOf[$0] != lost }
        #expect(!kept.isEmpty && kept.count < rooms.count, "the rooms fall on more than one partition")
        Propagation.stopChecking(parentsOn: [lost], of: 4, in: &scenario.view)
        #expect(scenario.view.checkedParents == Set(kept.map { Propagation.checkedKey(rule, $0) }))
        let followed = scenario.followed(rooms.map { Self.temperature("t-\($0)", 25, sequence: 2) })
        #expect(Set(followed.map(\.twinID)) == Set(kept))
    }

    @Test func aValueThatDoesNotFitTheParentsModelIsRefused() throws {
        var scenario = try Scenario(rooms: ["room1": ["t1"]])
        let outcome = scenario.decide([Self.temperature("t1", "warm", sequence: 1)])
        #expect(outcome.outputs.isEmpty)
        #expect(outcome.refused.count == 1)
        #expect(outcome.refused.first?.reason.contains("currentTemp") == true, "\(outcome.refused)")
    }

    @Test func relationshipNotificationsKeepTheViewCurrent() throws {
        let view = RelationshipView(names: ["rel_has_thermostat"], tracked: PropagationRules.seed.trackedProperties)
        view.load(relationships: [], twins: [:])
        func relationship(_ type: String, _ source: String, _ target: String) -> TwinNotification {
            Self.relationship(type, id: "r1", source: source, target: target)
        }
        view.apply([relationship("Microsoft.DigitalTwins.Relationship.Create", "room1", "t1")])
        #expect(view.withState { $0.parents(of: "t1", by: PropagationRules.seed.rules[0]) } == ["room1"])
        view.apply([relationship("Microsoft.DigitalTwins.Relationship.Delete", "room1", "t1")])
        view.apply([relationship("Microsoft.DigitalTwins.Relationship.Create", "room2", "t1")])
        #expect(view.withState { $0.parents(of: "t1", by: PropagationRules.seed.rules[0]) } == ["room2"])
        #expect(view.size.relationships == 1)
    }
}

/// What the view's follower may pass over unread.
struct NotificationFilterTests {
    @Test func onlyUpdatesNamingNoTrackedPropertyArePassedOver() throws {
        let filter = NotificationFilter(tracked: PropagationRules.seed.trackedProperties)
        func bytes(_ notification: TwinNotification) -> [UInt8] {
            CloudEvent(
                attributes: notification.attributes,
                data: ["modelId": "m", "patch": { if case .twinUpdated(let patch) = notification.change { return patch.json } else { return [] } }()]
            ).kafkaMessage(topic: "t", key: "k").value ?? []
        }
        #expect(
            !filter.mayMatter(bytes(PropagationTests.temperature("t1", 20, sequence: 1))),
            "a thermostat's own reading: the seed rule copies it from the change")
        let room = PropagationTests.update(
            "r1", sequence: 1, model: PropagationTests.room, [.add(path: JSONPointer(tokens: ["currentTemp"]), value: 20)])
        #expect(filter.mayMatter(bytes(room)), "a room's currentTemp is kept")
        let relationship = CloudEvent(
            attributes: CloudEventAttributes(id: "e", type: "Microsoft.DigitalTwins.Relationship.Create", source: "s", subject: "r1/relationships/x"),
            data: ["$relationshipId": "x", "$relationshipName": "rel_has_thermostat", "$sourceId": "r1", "$targetId": "t1"])
        #expect(filter.mayMatter(relationship.kafkaMessage(topic: "t", key: "r1").value))
        // A relationship whose ID or properties read like an update is still a relationship.
        for (id, note) in [("Microsoft.DigitalTwins.Twin.Update", "n"), ("x", #"{"type":"Microsoft.DigitalTwins.Twin.Update"}"#)] {
            let disguised = CloudEvent(
                attributes: CloudEventAttributes(
                    id: "e", type: "Microsoft.DigitalTwins.Relationship.Create", source: "s", subject: "r1/relationships/\(id)"),
                data: [
                    "$relationshipId": .string(id), "$relationshipName": "rel_has_thermostat", "$sourceId": "r1", "$targetId": "t1",
                    "note": try JSONValue.parse(Array(note.utf8.count > 1 && note.hasPrefix("{") ? note.utf8 : "\"\(note)\"".utf8)),
                ])
            #expect(filter.mayMatter(disguised.kafkaMessage(topic: "t", key: "r1").value), "\(id)")
        }
        #expect(NotificationFilter.firstIndex(of: Array("abd".utf8), in: Array("abcabd".utf8)) == 3)
        #expect(NotificationFilter.firstIndex(of: Array("abd".utf8), in: Array("abcab".utf8)) == nil)
        #expect(NotificationFilter.firstIndex(of: Array("abd".utf8), in: Array("abd".utf8)) == 0)
    }
}

/// The rules file and its check against the models.
struct PropagationRulesTests {
    @Test func theContractsExampleReadsWithItsDefaults() throws {
        let rules = try PropagationRules(
            json: try JSONValue.parse(
                #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "contains", "direction": "incoming", "targetProperty": "/Temperature", "kind": "copy"}, {"sourceProperty": "/Temperature", "relationship": "contains", "targetProperty": "/avg", "kind": "average"}]}"#
            ))
        #expect(rules.rules.count == 2)
        #expect(rules.rules[0].sourceModel == "dtmi:contosocom:DigitalTwins:Thermostat;1")
        #expect(rules.rules[1].sourceModel == nil)
        #expect(rules.rules[1].direction == .incoming)
        #expect(rules.rules[1].kind == .average)
        #expect(rules.rules[0].key != rules.rules[1].key)
        #expect(rules.relationshipNames == ["contains"])
    }

    @Test(arguments: [
        (#"{"rules": []}"#, "empty"),
        (#"{"rules": [{"relationship": "contains", "targetProperty": "/t"}]}"#, "rule 1 needs \"sourceProperty\""),
        (#"{"rules": [{"sourceProperty": "Temperature", "relationship": "contains", "targetProperty": "/t"}]}"#, "JSON pointer"),
        (#"{"rules": [{"sourceProperty": "/a", "relationship": "contains", "targetProperty": "/t", "kind": "sum"}]}"#, "copy, average, min, max"),
        (#"{"rules": [{"sourceProperty": "/a", "relationship": "contains", "targetProperty": "/t", "direction": "up"}]}"#, "incoming, outgoing"),
        (#"{"rules": [{"sourceProperty": "/a", "relationship": "contains", "targetProperty": "/t", "weight": 2}]}"#, "unknown member 'weight'"),
        (#"{"rules": [{"sourceProperty": "/a", "relationship": "has space", "targetProperty": "/t"}]}"#, "relationship name"),
    ])
    func aBadRulesFileIsRefusedWithTheReason(text: String, reason: String) throws {
        #expect(throws: RuleError.self) { try PropagationRules(json: try JSONValue.parse(text)) }
        do {
            _ = try PropagationRules(json: try JSONValue.parse(text))
        } catch {
            #expect("\(error)".contains(reason), "\(error)")
        }
    }

    @Test func rulesAreCheckedAgainstTheModels() throws {
        var models = ModelSet()
        try models.add(try DTDLParser.parseUpload(try Fixtures.upload("seed")))
        #expect(PropagationRules.seed.misfits(in: models).isEmpty)
        func rules(_ json: String) throws -> PropagationRules { try PropagationRules(json: try JSONValue.parse(json)) }
        let misspelt = try rules(
            #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperatur", "relationship": "rel_has_thermostat", "targetProperty": "/currentTemp"}]}"#
        )
        #expect(misspelt.misfits(in: models).first?.contains("has no property /Temperatur") == true, "\(misspelt.misfits(in: models))")
        let unknownTarget = try rules(
            #"{"rules": [{"sourceModel": "dtmi:contosocom:DigitalTwins:Thermostat;1", "sourceProperty": "/Temperature", "relationship": "rel_has_thermostat", "targetProperty": "/temp"}]}"#
        )
        #expect(unknownTarget.misfits(in: models).first?.contains("Room;1 has no property /temp") == true, "\(unknownTarget.misfits(in: models))")
        let building = try Fixtures.upload("building")
        var buildingModels = ModelSet()
        try buildingModels.add(try DTDLParser.parseUpload(building))
        let adtSample = try rules(#"{"rules": [{"sourceProperty": "/Temperature", "relationship": "contains", "targetProperty": "/Temperature"}]}"#)
        #expect(adtSample.misfits(in: buildingModels).isEmpty, "\(adtSample.misfits(in: buildingModels))")
        let wrongType = try rules(#"{"rules": [{"sourceProperty": "/Temperature", "relationship": "contains", "targetProperty": "/name"}]}"#)
        #expect(wrongType.misfits(in: buildingModels).contains { $0.contains("is string") }, "\(wrongType.misfits(in: buildingModels))")
    }
}
