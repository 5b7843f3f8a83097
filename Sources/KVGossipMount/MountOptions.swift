/// How a `Mount` presents the tree: ownership, who may enter, which names stay local.
public struct MountOptions: Sendable {
    /// Owner and group of every file and directory in the mount.
    public var uid: UInt32 = 0, gid: UInt32 = 0
    /// Lets users other than the mounting one use the mount. The kernel then enforces the mode bits
    /// (`default_permissions` is always on), so 0444 keys stay read-only for everyone but root.
    public var allowOther: Bool = true
    /// Name patterns that are local scratch (Docs/filesystem.md §Scratch names): a path with any segment
    /// matching one of them lives only in this mount's memory and is never minted. `*` matches any run of
    /// characters, `?` exactly one; a pattern matches a whole segment.
    public var scratchPatterns: [String] = MountOptions.defaultScratchPatterns
    /// The peers listed by the root's `user.kvgossip.peers` attribute, one per line.
    public var peers: @Sendable () -> [String] = { [] }
    /// How long a key renamed onto a scratch name waits for its re-creation before it is
    /// tombstoned (internal: tests shorten it).
    var hiddenGraceMs: UInt64 = 3000
    /// Lets readers of a key use the kernel's page cache: warm reads run at page-cache speed and an
    /// open + read + close costs one request less, but a file held open across a change may read
    /// bytes of the new version or be cut to its size (the one consistent version per open of
    /// Docs/filesystem.md §Reading then holds only for reads made before the change). Off by default.
    public var readerPageCache = false
    /// Memory for values read recently, so opening a key needs no store read.
    public var valueCacheBytes = 64 << 20
    /// How to start the replay helper (`ReplayHelper`): an executable and its leading arguments;
    /// `--channel FD MOUNTPOINT` follow. The agent runs its own binary's `mount-helper`.
    public var helperCommand = ["/proc/self/exe", "mount-helper"]
    /// How long the replay helper may take to take a request or answer one before it is killed
    /// and replaced (internal: tests shorten it).
    var helperAnswerTimeoutMs = ReplayHelper.Child.answerTimeoutMs

    public init() {}

    /// Dot names, `~` backups, vim's `4913` probe and swap files, emacs lock/auto-save names and
    /// GNU sed's `sedXXXXXX` temporaries.
    public static let defaultScratchPatterns = [".*", "*~", "4913", "#*#", "*.swp", "*.swx", "*.swpx", "sed??????"]
}
