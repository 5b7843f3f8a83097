import Foundation
import KVGossipNode
import KVGossipStore
import KVGossipSync
import Logging
import Synchronization

/// sd_notify without libsystemd: one datagram per message to $NOTIFY_SOCKET (a path, or an
/// abstract socket when it starts with "@"). Does nothing when the variable is unset.
struct SystemdNotify: Sendable {
    let socketPath: String?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    var isEnabled: Bool { socketPath != nil }

    func send(_ message: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard pathBytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1))
        let payload = Array(message.utf8)
        _ = withUnsafePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, length) }
            }
        }
    }
}

/// Counts down the parts that must be up before the agent tells systemd it is ready.
final class Readiness: Sendable {
    private let remaining: Mutex<Int>
    private let onReady: @Sendable () -> Void

    init(parts: Int, onReady: @escaping @Sendable () -> Void) {
        remaining = Mutex(parts)
        self.onReady = onReady
    }

    func partReady() {
        let now = remaining.withLock { n -> Int in
            n -= 1
            return n
        }
        if now == 0 { onReady() }
    }
}

extension Readiness {
    /// Counts one part ready when every key is synced: at once if it already is, else at the first
    /// `.all(.synced)` the gossip publishes (its first completed reconciliation). Observes before it
    /// looks, so the change cannot slip between the two.
    static func partWhenSynced(_ readiness: Readiness, node: Node, engine: GossipEngine, logger: Logger) -> CommitObservation {
        let once = Mutex(false)
        let mark: @Sendable () -> Void = {
            guard once.withLock({ done in
                defer { done = true }
                return !done
            }) else { return }
            logger.info("reconciled with the cluster (readiness: synced)")
            readiness.partReady()
        }
        let observation = node.observeStateChanges { change in
            if change == .all(.synced) { mark() }
        }
        if engine.defaultKeyState == .synced { mark() }
        return observation
    }
}
