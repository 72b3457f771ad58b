package sphinxserve.server.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

/**
 * A Maven local repository that holds everything another one holds except one group: a tree of symbolic links to
 * the other's entries, with real directories only along the left-out group's path. A child Maven pointed at it
 * ({@code -Dmaven.repo.local}) finds every third-party artifact without downloading anything, but none of the
 * left-out group's, as on a machine where the project was never installed.
 */
public final class RepositoryWithoutGroup {

  private RepositoryWithoutGroup() {}

  /**
   * Fills {@code target} (created if absent) with links to the entries of {@code source}, leaving out the group
   * {@code groupId} (e.g. {@code dev.sphinxserve}).
   */
  public static void create(Path source, Path target, String groupId) throws IOException {
    link(source, target, List.of(groupId.split("\\.")));
  }

  /**
   * Removes what {@link #create} made under {@code target}: the links themselves (never what they point to) and
   * the directories along the group's path. Call it before anything deletes {@code target} recursively, so no
   * recursive delete can ever walk into {@code source}.
   */
  public static void remove(Path target) throws IOException {
    if (!Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) return;
    try (Stream<Path> entries = Files.list(target)) {
      for (Path entry : entries.toList()) {
        if (Files.isSymbolicLink(entry)) Files.delete(entry);
        else if (Files.isDirectory(entry, LinkOption.NOFOLLOW_LINKS)) remove(entry);
      }
    }
  }

  /** Links {@code from}'s entries into {@code to}, descending (as real directories) into {@code excluded}'s path. */
  private static void link(Path from, Path to, List<String> excluded) throws IOException {
    Files.createDirectories(to);
    if (!Files.isDirectory(from)) return;
    try (Stream<Path> entries = Files.list(from)) {
      for (Path entry : entries.toList()) {
        String name = entry.getFileName().toString();
        if (!name.equals(excluded.getFirst())) {
          Files.createSymbolicLink(to.resolve(name), entry.toAbsolutePath());
        } else if (excluded.size() > 1) {
          link(entry, to.resolve(name), excluded.subList(1, excluded.size()));
        } // else: the group's own directory, left out
      }
    }
  }
}
