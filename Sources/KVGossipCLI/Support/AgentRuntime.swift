import Dispatch
import Foundation
import KVGossipControl
import KVGossipNode
import Logging

/// Runs the agent's long-lived parts side by side and stops them all on SIGTERM or SIGINT.
struct AgentRuntime: Sendable {
    let node: Node
    let logger: Logger
    let mountpoint: String?

    func run(controlPath: String, controlListen: ControlEndpoint?) async throws {
        let handler = ControlHandler(node: node, mountpoint: mountpoint)
        let server = ControlServer(handler: handler, logger: logger)
        let stop = ShutdownSignal()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serveUnix(path: controlPath) }
            if case .tcp(let host, let port) = controlListen {
                group.addTask { try await server.serveTCP(host: host, port: port) }
            }
            group.addTask {
                let signal = await stop.wait()
                logger.notice("shutting down", metadata: ["signal": "\(signal)"])
            }
            // The first task to finish (a signal, or a server that failed) stops the others.
            do {
                try await group.next()
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
        unlink(controlPath)
    }
}

/// SIGTERM and SIGINT as an awaitable event (the default handlers are replaced so the agent
/// can unmount and close the store before exiting).
final class ShutdownSignal: Sendable {
    private let stream: AsyncStream<Int32>
    // Kept alive for the process's lifetime; only touched in init.
    nonisolated(unsafe) private let sources: [any DispatchSourceSignal]

    init() {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        self.stream = stream
        sources = [SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { continuation.yield(sig) }
            source.resume()
            return source
        }
    }

    func wait() async -> Int32 {
        for await sig in stream { return sig }
        return 0
    }
}
