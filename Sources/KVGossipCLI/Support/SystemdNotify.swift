import Foundation
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
