import Foundation
import Synchronization
import Testing
@testable import KVGossipStore

/// Thread names reach the kernel, where `top -H`, `ps -L` and perf read them.
@Suite struct NamedThreadTests {
    /// What the kernel calls the thread `startNamedThread` started under `name`.
    static func kernelName(startingUnder name: String) -> String? {
        let seen = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        startNamedThread(name) {
            seen.withLock { $0 = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?.trimmingCharacters(in: .newlines) }
            done.signal()
        }
        done.wait()
        return seen.withLock { $0 }
    }

    @Test func theKernelShowsTheName() {
        #expect(Self.kernelName(startingUnder: "kvg-test") == "kvg-test")
    }

    @Test func aLongNameIsCutToTheKernelsFifteenBytes() {
        #expect(Self.kernelName(startingUnder: "kvg-a-name-longer-than-fifteen") == "kvg-a-name-long")
    }
}
