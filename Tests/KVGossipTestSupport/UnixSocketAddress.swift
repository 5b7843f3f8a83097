import Glibc

extension sockaddr_un {
    /// The address of the Unix socket at `path`; nil when the path does not fit.
    public init?(path: String) {
        self.init()
        sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: sun_path) else { return nil }
        withUnsafeMutableBytes(of: &sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
    }
}
