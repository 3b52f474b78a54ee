// swift-tools-version:6.0
import PackageDescription

/// One set of Swift settings for every target: Swift 6 language mode with
/// upcoming features that keep the code honest.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// The server's own targets: release builds skip the run-time exclusivity checks of class
/// properties (`swift_beginAccess`, ~5% of sessiond's instructions per state change under load).
/// Debug builds, which the tests run, keep every check, so an overlapping access still traps there.
/// None of the SessionClient library's targets carries the flag, so another package may depend on
/// it (SwiftPM refuses unsafe flags in a dependency's targets, whatever their condition); keep it
/// that way: SessionClient must not depend on these targets.
let serverSwiftSettings: [SwiftSetting] = swiftSettings + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "sessions",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sessiond", targets: ["sessiond"]),
        .executable(name: "sessionctl", targets: ["sessionctl"]),
        .library(name: "SessionClient", targets: ["SessionClient"]),
        .executable(name: "session-bench", targets: ["session-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // ---- C libraries and generated C
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "RPCProtoC", dependencies: ["CProtobufC"]),
        .target(name: "SessionProtoC", dependencies: ["CProtobufC"]),

        // ---- protobuf-c runtime for generated Swift
        .target(name: "ProtoRuntime", dependencies: ["CProtobufC"], swiftSettings: swiftSettings),

        // ---- the generic RPC framework (no domain knowledge)
        .target(
            name: "RPC",
            dependencies: [
                "RPCProtoC", "ProtoRuntime", "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // ---- generated API: messages, service protocols, method descriptors
        .target(name: "SessionAPI", dependencies: ["SessionProtoC", "ProtoRuntime", "RPC"], swiftSettings: swiftSettings),

        // ---- the domain (pure: no I/O, no clock) and its storage
        .target(name: "SessionCore", swiftSettings: serverSwiftSettings),
        .target(name: "SessionStorage", dependencies: ["CSQLite", "CLibPQ", "SessionCore"], swiftSettings: serverSwiftSettings),
        // ---- the state owner: a partition in memory, group-committed to its journal
        .target(name: "SessionState", dependencies: ["SessionCore", "SessionStorage"], swiftSettings: serverSwiftSettings),

        // ---- version and build commit (--version of both executables)
        .plugin(name: "BuildInfoPlugin", capability: .buildTool(), path: "Plugins/BuildInfoPlugin"),
        .target(name: "BuildInfo", swiftSettings: swiftSettings, plugins: ["BuildInfoPlugin"]),

        // ---- server and daemon
        .target(
            name: "SessionServer",
            dependencies: [
                "SessionAPI", "RPC", "SessionCore", "SessionStorage", "SessionState",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: serverSwiftSettings
        ),
        .executableTarget(
            name: "sessiond",
            dependencies: [
                "SessionServer", "RPC", "BuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // ---- clients
        .target(
            name: "SessionClient",
            dependencies: ["SessionAPI", "RPC", "ProtoRuntime"],
            path: "Clients/SessionClient",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sessionctl",
            dependencies: [
                "SessionClient", "BuildInfo", "SessionCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Clients/sessionctl",
            swiftSettings: swiftSettings
        ),

        .executableTarget(name: "session-bench", dependencies: ["RPCProtoC", "SessionProtoC", "COpenSSL"]),
        .executableTarget(name: "session-sweep-bench", dependencies: ["SessionServer", "SessionState", "SessionStorage", "SessionCore", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),

        // ---- tests
        .testTarget(name: "RPCTests", dependencies: ["RPC", "SessionAPI", "SessionClient", "SessionServer", "ProtoRuntime", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(name: "SystemTests", dependencies: ["SessionClient", "SessionAPI", "RPC", "SessionCore", "SessionStorage", "PostgresTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ProtoRuntimeTests", dependencies: ["ProtoRuntime", "SessionAPI", "RPC"], swiftSettings: swiftSettings),
        .testTarget(name: "SessionCoreTests", dependencies: ["SessionCore"], swiftSettings: swiftSettings),
        .target(name: "PostgresTestSupport", dependencies: ["SessionStorage"], path: "Tests/PostgresTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "SessionStorageTests", dependencies: ["SessionStorage", "SessionCore", "SessionState", "PostgresTestSupport"], swiftSettings: swiftSettings),
        // Runs the built sessionctl and sessiond binaries (swift build --build-tests builds them).
        .testTarget(name: "SessionctlTests", dependencies: ["SessionServer", "SessionClient", "SessionAPI", "RPC"], swiftSettings: swiftSettings),
        .testTarget(name: "SessionServerTests", dependencies: ["SessionServer", "SessionClient", "SessionAPI", "RPC", "SessionCore", "SessionStorage"], swiftSettings: swiftSettings),
    ]
)
