import CSodium

/// libsodium must be initialised once before any other call; `sodium_init` is idempotent and
/// thread-safe, so every entry point of this file funnels through `ensureInitialised()`.
enum Sodium {
    static let initialised: Bool = sodium_init() >= 0

    @inline(__always)
    static func ensureInitialised() {
        precondition(initialised, "libsodium failed to initialise")
    }
}

/// Cryptographically secure random bytes from the operating system (libsodium's `randombytes`).
public func secureRandomBytes(_ count: Int) -> [UInt8] {
    Sodium.ensureInitialised()
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, count) }
    return out
}
