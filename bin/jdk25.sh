# Sourced by mvnw25 and bin/* scripts: exports JAVA_HOME as a JDK 25 or newer, or exits with a clear message.
# Order: $JAVA_HOME if it is 25 or newer, then the Temurin 25 the build machines ship under /usr/lib/jvm,
# then any other JDK 25+ there.

java_major() { # prints the major version of the java at $1/bin/java, or nothing
  [ -x "$1/bin/java" ] || return 0
  "$1/bin/java" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}'
}

pick_jdk() {
  local candidate major
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-25* /usr/lib/jvm/*; do
    [ -n "$candidate" ] && [ -d "$candidate" ] || continue
    major=$(java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! jdk=$(pick_jdk); then
  echo "error: sphinx-serve needs JDK 25 or newer, and none was found (looked at JAVA_HOME='${JAVA_HOME:-}' and /usr/lib/jvm/*)." >&2
  echo "       Install a JDK 25 (e.g. Temurin 25) and set JAVA_HOME to it." >&2
  exit 1
fi
export JAVA_HOME="$jdk"
unset jdk
