import Foundation
import KVGossipMount

/// How this machine's idle CPUs wake, printed at the top of every run: every figure that waits on
/// another thread or process (a FUSE round trip, a push, a session) pays for waking the CPU it
/// runs on, and on a virtual machine that price depends on one setting more than on our code.
///
/// A KVM guest with the `haltpoll` cpuidle driver halts an idle vCPU at once when
/// `guest_halt_poll_ns` is 0, and waking it again is an interrupt sent through the hypervisor.
/// On the 2-vCPU machine of Docs/filesystem.md §Waking a halted vCPU that took an open + read +
/// close through the mount from p50 23 µs (polling for up to 200 µs) to 61 µs (0).
///
/// Some kernels' `fuse` module has a `wake_here` parameter: when set, a FUSE answer wakes the waiting
/// caller on the answering thread's CPU, which is awake, instead of on the caller's own halted one. On
/// the machine of Docs/filesystem.md §Waking the caller where the answer is, it halved that p50.
enum HostIdle {
    static let pollSetting = "/sys/module/haltpoll/parameters/guest_halt_poll_ns"
    static let idleDriver = "/sys/devices/system/cpu/cpuidle/current_driver"

    /// One line for the run's header, e.g. "host: 2 CPUs; cpuidle haltpoll, guest_halt_poll_ns 0 (…)".
    static func describe() -> String {
        var parts = ["\(ProcessInfo.processInfo.activeProcessorCount) CPUs"]
        let driver = read(idleDriver)
        if let driver { parts.append("cpuidle \(driver)") }
        if driver == "haltpoll", let poll = read(pollSetting).flatMap(Int.init) {
            parts.append(poll == 0
                ? "guest_halt_poll_ns 0 (an idle vCPU halts at once: each wake-up of another thread is a trip through the hypervisor; see Docs/filesystem.md §Waking a halted vCPU)"
                : "guest_halt_poll_ns \(poll) (an idle vCPU polls before it halts)")
        }
        switch FuseModule.wakeHere() {
        case "Y": parts.append("fuse wake_here Y (a FUSE answer wakes its caller on the answering CPU)")
        case "N": parts.append("fuse wake_here N (a FUSE answer wakes its caller on the caller's CPU; see Docs/filesystem.md §Waking the caller where the answer is)")
        default: break
        }
        return "host: " + parts.joined(separator: "; ")
    }

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
