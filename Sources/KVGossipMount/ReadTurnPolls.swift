import Foundation

/// How long the worker holding the mount's read turn (`RequestReader`) polls the connection before
/// it sleeps in read(2), by the request it has just read, in nanoseconds (Docs/filesystem.md §One
/// reader at a time). Public with `RequestReader`, which `kvgossip-bench`'s floor filesystem uses too.
public struct ReadTurnPolls: Equatable, Sendable, CustomStringConvertible {
    /// For the new holder after a slow request, and for the holder after a writer's OPEN,
    /// GETXATTR or WRITE: a writer's next request follows its answer.
    public let afterSlow: Int64
    /// After a reader's OPEN: its RELEASE follows as soon as the reader has read its backing,
    /// without asking the mount.
    public let afterReaderOpen: Int64
    /// After any other quick request: a reader in a loop opens again a few microseconds after its
    /// close.
    public let afterQuick: Int64

    /// Where the fuse module wakes a caller on the answering CPU (`wake_here` "Y"), a reader is
    /// moved to the holder's vCPU at each answer, so polling after its requests only trades that
    /// vCPU with it: measured, it lengthened readers' tails and cost CPU, and the holder sleeps in
    /// read(2) at once instead. Elsewhere the poll keeps the holder's vCPU from halting, without
    /// which each request would first wake it (three times slower there).
    public init(spinMicroseconds: Int, wakeHere: String?) {
        let long = Int64(spinMicroseconds) * 1000
        afterSlow = long
        if wakeHere == "Y" {
            afterReaderOpen = 0
            afterQuick = 0
        } else {
            afterReaderOpen = long
            afterQuick = min(long, 10_000)
        }
    }

    /// KVGOSSIP_MOUNT_SPIN_US in the environment (0–1000), else 50 µs: the longest window, and 0
    /// turns the read turn off.
    public static var configuredSpinMicroseconds: Int {
        ProcessInfo.processInfo.environment["KVGOSSIP_MOUNT_SPIN_US"].flatMap { Int($0) }.map { max(0, min($0, 1000)) } ?? 50
    }

    public var description: String {
        "\(afterSlow / 1000) µs after a slow request or a writer's step, \(afterReaderOpen / 1000) after a reader's open, \(afterQuick / 1000) after others"
    }
}
