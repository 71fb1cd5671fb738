// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "twinflow",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "devbroker", targets: ["devbroker"]),
        .executable(name: "twin-service", targets: ["twin-service"]),
        .executable(name: "twinctl", targets: ["twinctl"]),
        .executable(name: "ingress", targets: ["ingress"]),
        .executable(name: "propagator", targets: ["propagator"]),
        .executable(name: "kafka-bench", targets: ["kafka-bench"]),
        .executable(name: "twin-bench", targets: ["twin-bench"]),
        .executable(name: "command-bench", targets: ["command-bench"]),
        .executable(name: "ingress-bench", targets: ["ingress-bench"]),
        .executable(name: "propagator-bench", targets: ["propagator-bench"]),
        .executable(name: "tsi-forwarder", targets: ["tsi-forwarder"]),
        .executable(name: "tsi-store", targets: ["tsi-store"]),
        .executable(name: "tsi-bench", targets: ["tsi-bench"]),
        .executable(name: "pipeline-bench", targets: ["pipeline-bench"]),
        .library(name: "KafkaRecords", targets: ["KafkaRecords"]),
        .library(name: "TwinflowKafka", targets: ["TwinflowKafka"]),
        .library(name: "TwinflowCodec", targets: ["TwinflowCodec"]),
        .library(name: "TwinflowRuntime", targets: ["TwinflowRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // MARK: Shared modules

        .systemLibrary(
            name: "CRDKafka",
            path: "Shared/CRDKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CTCMalloc",
            path: "Shared/CTCMalloc",
            providers: [.apt(["libtcmalloc-minimal4"])]
        ),
        .target(
            name: "KafkaRecords",
            path: "Shared/KafkaRecords",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TwinflowKafka",
            dependencies: [
                "CRDKafka",
                "KafkaRecords",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/TwinflowKafka",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TwinflowCodec",
            dependencies: ["KafkaRecords"],
            path: "Shared/TwinflowCodec",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TwinflowRuntime",
            dependencies: [
                "TwinflowKafka",
                "TwinflowCodec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Shared/TwinflowRuntime",
            swiftSettings: swiftSettings
        ),

        .target(
            name: "TwinflowSQLite",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            path: "Shared/TwinflowSQLite",
            swiftSettings: swiftSettings
        ),

        .target(
            name: "TwinflowPostgres",
            dependencies: [
                "TwinflowRuntime",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/TwinflowPostgres",
            swiftSettings: swiftSettings
        ),
        // MARK: twin-service

        .target(
            name: "TwinGraph",
            dependencies: [
                "TwinflowCodec",
                "TwinflowPostgres",
                "TwinflowRuntime",
                "TwinflowSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            path: "Services/twin-service/TwinGraph",
            swiftSettings: swiftSettings
        ),

        .target(
            name: "TwinService",
            dependencies: [
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/twin-service/TwinService",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "twin-service",
            dependencies: [
                .target(name: "CTCMalloc", condition: .when(platforms: [.linux])),
                "TwinGraph",
                "TwinService",
                "TwinflowPostgres",
                "TwinflowRuntime",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/twin-service/Main",
            swiftSettings: swiftSettings
        ),

        // MARK: ingress

        .target(
            name: "Ingress",
            dependencies: [
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/ingress/Ingress",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ingress",
            dependencies: [
                .target(name: "CTCMalloc", condition: .when(platforms: [.linux])),
                "Ingress",
                "TwinflowRuntime",
            ],
            path: "Services/ingress/Main",
            swiftSettings: swiftSettings
        ),

        // MARK: propagator

        .target(
            name: "Propagator",
            dependencies: [
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/propagator/Propagator",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "propagator",
            dependencies: [
                .target(name: "CTCMalloc", condition: .when(platforms: [.linux])),
                "Propagator",
                "TwinflowRuntime",
            ],
            path: "Services/propagator/Main",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "twinctl",
            dependencies: [
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/twinctl",
            swiftSettings: swiftSettings
        ),

        // MARK: Executables

        .executableTarget(
            name: "devbroker",
            dependencies: [
                "TwinflowKafka",
                "TwinflowCodec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Services/devbroker",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "kafka-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinflowKafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/kafka-bench",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "twin-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinflowCodec",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/twin-bench",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "TwinflowPostgres",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Benchmarks/BenchmarkSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "command-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowPostgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/command-bench",
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "ingress-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/ingress-bench",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "propagator-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinBenchSupport",
                "TwinGraph",
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/propagator-bench",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TwinBenchSupport",
            dependencies: ["BenchmarkSupport", "TwinGraph", "TwinflowCodec", "TwinflowKafka"],
            path: "Benchmarks/TwinBenchSupport",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "pipeline-bench",
            dependencies: [
                "BenchmarkSupport",
                "TwinBenchSupport",
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/pipeline-bench",
            swiftSettings: swiftSettings
        ),

        // MARK: Tests

        .target(
            name: "TwinflowTestSupport",
            dependencies: [
                "TwinflowKafka",
                "TwinflowCodec",
                "TwinflowPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TwinflowTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinflowCodecTests",
            dependencies: ["TwinflowCodec", "KafkaRecords", "TwinflowTestSupport"],
            path: "Tests/TwinflowCodecTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinflowKafkaTests",
            dependencies: ["TwinflowKafka", "CRDKafka"],
            path: "Tests/TwinflowKafkaTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinflowKafkaIntegrationTests",
            dependencies: [
                "TwinflowKafka",
                "TwinflowCodec",
                "TwinflowRuntime",
                "TwinflowTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TwinflowKafkaIntegrationTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinGraphTests",
            dependencies: [
                "TwinGraph",
                "TwinService",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowPostgres",
                "TwinflowRuntime",
                "TwinflowTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            path: "Tests/TwinGraphTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinServiceIntegrationTests",
            dependencies: [
                "TwinGraph",
                "TwinService",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowPostgres",
                "TwinflowRuntime",
                "TwinflowTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TwinServiceIntegrationTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TwinflowRuntimeTests",
            dependencies: [
                "TwinflowRuntime",
                "TwinflowTestSupport",
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            path: "Tests/TwinflowRuntimeTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IngressTests",
            dependencies: [
                "Ingress",
                "TwinGraph",
                "TwinService",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                "TwinflowTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/IngressTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PropagatorTests",
            dependencies: [
                "Propagator",
                "TwinGraph",
                "TwinService",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                "TwinflowTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PropagatorTests",
            swiftSettings: swiftSettings
        ),

        // MARK: tsi-forwarder and tsi-store

        .target(
            name: "TsiForwarder",
            dependencies: [
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/tsi-forwarder/TsiForwarder",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tsi-forwarder",
            dependencies: [
                .target(name: "CTCMalloc", condition: .when(platforms: [.linux])),
                "TsiForwarder",
                "TwinflowRuntime",
            ],
            path: "Services/tsi-forwarder/Main",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TsiStore",
            dependencies: [
                "TwinflowCodec",
                "TwinflowSQLite",
                "TwinflowPostgres",
                "TwinflowKafka",
                "TwinflowRuntime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Services/tsi-store/TsiStore",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tsi-store",
            dependencies: [
                .target(name: "CTCMalloc", condition: .when(platforms: [.linux])),
                "TsiStore",
                "TwinflowRuntime",
            ],
            path: "Services/tsi-store/Main",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tsi-bench",
            dependencies: [
                "BenchmarkSupport",
                "TsiStore",
                "TwinflowTestSupport",
                "TwinflowCodec",
                "TwinflowKafka",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/tsi-bench",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TsiTests",
            dependencies: [
                "TsiForwarder",
                "TsiStore",
                "TwinflowPostgres",
                "TwinflowRuntime",
                "TwinflowCodec",
                "TwinflowKafka",
                "TwinflowTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TsiTests",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DeploymentTests",
            dependencies: ["TwinflowCodec", "TwinflowKafka", "TwinflowTestSupport", .product(name: "Logging", package: "swift-log")],
            path: "Tests/DeploymentTests",
            swiftSettings: swiftSettings
        ),
    ]
)
