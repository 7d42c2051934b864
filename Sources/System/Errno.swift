#if canImport(Glibc)
import Glibc
#endif

/// The text of an errno value, lowercased to read inside a sentence
/// ("no such file or directory"). The only place that calls `strerror`.
public func errnoMessage(_ code: Int32 = errno) -> String {
    if code == ENOSPC { return "no space left on device" }
    return String(cString: strerror(code)).lowercased()
}
