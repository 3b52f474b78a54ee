/// What `--version` prints for `sessiond` and `sessionctl`: the release
/// version and the git commit the binary was built from (written at build
/// time by `Plugins/BuildInfoPlugin`; "unknown" without a git checkout).
public enum BuildInfo {
    /// The release version of the package.
    public static let version = "0.3.0"

    /// The short git commit of the checkout that was built, or "unknown".
    public static let commit: String = buildCommit

    /// `0.3.0 (commit ff1eb22)`.
    public static let versionString = "\(version) (commit \(commit))"
}
