package sphinxserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.sphinxserve.proto.v1.SamplingParams;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import sphinxserve.client.Answer;
import sphinxserve.client.Conversation;
import sphinxserve.client.Image;
import sphinxserve.client.RetrySettings;
import sphinxserve.client.SphinxClient;
import sphinxserve.server.testing.FleetExtension;
import sphinxserve.server.testing.TestImages;
import sphinxserve.server.testing.TestNode;

/**
 * Image-affinity routing across a fleet: three real nodes on loopback, the real client with gRPC's ring hash on
 * {@code x-image-digest} (issue 8). Each image is a five-turn {@link Conversation} (bytes first, then the digest);
 * the ten conversations run at once, started in shuffled order with random pauses between turns.
 *
 * <p>Which node served a turn is read from the nodes themselves: an image held by a node's cache was encoded there,
 * and a turn that reaches a node without the image is a miss ({@code NOT_FOUND}, then the bytes again).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
final class ImageAffinityTest {

  private static final int NUM_IMAGES = 10;
  private static final int NUM_TURNS = 5;
  private static final SamplingParams SHORT = SamplingParams.newBuilder().setMaxTokens(4).setIgnoreEos(true).build();
  /** Quick retries so a node's drain is crossed within a second or two. */
  private static final RetrySettings RETRY = new RetrySettings(8, Duration.ofMillis(50), 2.0, 0.5, Duration.ofSeconds(1));

  @RegisterExtension
  final FleetExtension fleet = new FleetExtension(3, "--drain-seconds=10");

  @Test
  void ringHash_tenImagesFiveTurns_keepEachImageOnOneNodeAndHitTheCacheUnlikeRoundRobin() throws Exception {
    List<Image> images = images(1);
    Map<Image, List<Answer>> answers;
    try (SphinxClient client = client(true)) {
      answers = converse(client, images, 0, NUM_TURNS, turn -> {});
    }
    Locality ringHash = locality(answers, 0, 0); // before holders(), whose lookups count too
    assertEquals(NUM_IMAGES, ringHash.numEncoded(), "each image was encoded once in the whole fleet");
    assertTrue(ringHash.answerHitRate() >= 0.9, "ring hash: " + ringHash);
    assertTrue(ringHash.lookupHitRate() >= 0.9, "ring hash: " + ringHash);
    for (Image image : images) {
      assertEquals(1, holders(image).size(), "every turn of " + image + " landed on one node");
    }

    // The same workload with new images, round robin over the same (warm) nodes.
    long encodedBefore = numImagesEncoded();
    long[] lookupsBefore = lookups();
    Map<Image, List<Answer>> spread;
    try (SphinxClient client = client(false)) {
      spread = converse(client, images(2), 0, NUM_TURNS, turn -> {});
    }
    Locality roundRobin = locality(spread, encodedBefore, lookupsBefore[0], lookupsBefore[1]);
    System.out.println("image-cache locality over 10 images x 5 turns on 3 nodes: ring hash " + ringHash
        + "; round robin " + roundRobin);
    assertTrue(roundRobin.numEncoded() >= NUM_IMAGES * 13 / 10, "round robin encodes images on several nodes: " + roundRobin);
    assertTrue(roundRobin.lookupHitRate() <= 0.75, "round robin: " + roundRobin);
  }

  @Test
  void ringHash_nodeStoppedMidRun_failsOverWithoutErrorsAndMovesOnlyItsImages() throws Exception {
    List<Image> images = images(3);
    try (SphinxClient client = client(true)) {
      converse(client, images, 0, 2, turn -> {});
      Map<Image, Integer> ownerBefore = new ConcurrentHashMap<>();
      for (Image image : images) {
        List<Integer> holders = holders(image);
        assertEquals(1, holders.size(), image + " on one node");
        ownerBefore.put(image, holders.getFirst());
      }
      int victim = mostLoaded(ownerBefore);
      long encodedBefore = numImagesEncoded();

      // Turns 3–4 with the victim drained and stopped once two of them have completed (calls in flight), then
      // turn 5 after it is gone, so every moved image is asked about again. Some turns meet the draining node
      // (UNAVAILABLE) and are retried through the ring: no attempt-level error may reach the caller.
      AtomicInteger completed = new AtomicInteger();
      Thread stopper = Thread.ofPlatform().unstarted(() -> fleet.stop(victim));
      Map<Image, List<Answer>> during = converse(client, images, 2, 4, turn -> {
        if (completed.incrementAndGet() == 2) stopper.start();
      });
      stopper.join();
      Map<Image, List<Answer>> after = converse(client, images, 4, NUM_TURNS, turn -> {});

      List<Image> moved = images.stream().filter(i -> ownerBefore.get(i) == victim).toList();
      assertFalse(moved.isEmpty());
      for (Image image : images) {
        List<Integer> holders = holders(image);
        if (ownerBefore.get(image) != victim) {
          assertEquals(List.of(ownerBefore.get(image)), holders, image + " kept its node");
          assertTrue(during.get(image).stream().allMatch(a -> a.usage().getImageCacheHit())
              && after.get(image).getFirst().usage().getImageCacheHit(), image + " always hit");
        } else {
          assertEquals(1, holders.size(), image + " moved to exactly one surviving node");
        }
      }
      // Survivors encoded only the moved images, once each.
      assertEquals(encodedBefore + moved.size(), numImagesEncoded());
    }
  }

  // ---- workload ----------------------------------------------------------------------------------------------

  private SphinxClient client(boolean imageAffinity) {
    return SphinxClient.builder().targets(fleet.targets()).imageAffinity(imageAffinity).retry(RETRY)
        .defaultSampling(SHORT).defaultDeadline(Duration.ofSeconds(60)).build();
  }

  private static List<Image> images(long seed) {
    List<Image> images = new ArrayList<>();
    for (int i = 0; i < NUM_IMAGES; i++) {
      images.add(Image.of(TestImages.png(TestImages.noise(40 + i, 32, seed * 1000 + i))));
    }
    return images;
  }

  private final Map<Image, Conversation> conversations = new ConcurrentHashMap<>();

  /**
   * Runs turns {@code from}..{@code to - 1} of every image's conversation, the conversations at once (shuffled
   * start, random pauses); {@code afterTurn} sees each completed turn. Fails on any error a caller would see.
   */
  private Map<Image, List<Answer>> converse(SphinxClient client, List<Image> images, int from, int to,
      IntConsumer afterTurn) throws InterruptedException {
    List<Image> order = new ArrayList<>(images);
    Collections.shuffle(order, new Random(from * 31L + images.hashCode()));
    Map<Image, List<Answer>> answers = new ConcurrentHashMap<>();
    List<Throwable> errors = new CopyOnWriteArrayList<>();
    try (ExecutorService threads = Executors.newVirtualThreadPerTaskExecutor()) {
      for (Image image : order) {
        Conversation chat = conversations.computeIfAbsent(image, client::conversation);
        Random random = new Random(image.digest().hashCode());
        threads.execute(() -> {
          List<Answer> mine = new ArrayList<>();
          for (int turn = from; turn < to; turn++) {
            try {
              Thread.sleep(random.nextInt(30));
              mine.add(chat.ask("Question " + turn + ": what is in the image?"));
              afterTurn.accept(turn);
            } catch (Throwable t) {
              errors.add(t);
              return;
            }
          }
          answers.put(image, mine);
        });
      }
    }
    if (!errors.isEmpty()) {
      AssertionError failure = new AssertionError(errors.size() + " turns failed; first: " + errors.getFirst());
      errors.forEach(failure::addSuppressed);
      throw failure;
    }
    return answers;
  }

  /**
   * How well a workload used the image caches after each image's first turn.
   *
   * @param answerHitRate later turns whose answer says the image was already encoded on the node that answered
   *     ({@code usage.image_cache_hit}; a turn that met NOT_FOUND and resent the bytes may still find the image on
   *     the node its retry reached)
   * @param lookupHitRate the nodes' own image-cache hit ratio over those turns (what
   *     {@code sphinx_image_cache_lookups} reports): every lookup by digest or bytes, less each image's first miss
   * @param numEncoded images the vision encoder encoded, fleet-wide
   */
  record Locality(double answerHitRate, double lookupHitRate, long numEncoded) {
    @Override
    public String toString() {
      return String.format("answers hit %.2f, node lookups hit %.2f, %d encodes", answerHitRate, lookupHitRate,
          numEncoded);
    }
  }

  private Locality locality(Map<Image, List<Answer>> answers, long encodedBefore, long hitsBefore, long missesBefore) {
    int numLater = 0;
    int numHits = 0;
    for (List<Answer> turns : answers.values()) {
      for (Answer a : turns.subList(1, turns.size())) {
        numLater++;
        if (a.usage().getImageCacheHit()) numHits++;
      }
    }
    long[] now = lookups();
    long hits = now[0] - hitsBefore;
    long misses = now[1] - missesBefore - answers.size();
    return new Locality((double) numHits / numLater, (double) hits / (hits + misses), numImagesEncoded() - encodedBefore);
  }

  private Locality locality(Map<Image, List<Answer>> answers, long hitsBefore, long missesBefore) {
    return locality(answers, 0, hitsBefore, missesBefore);
  }

  /** Image-cache lookups by outcome, summed over the running nodes: {hits, misses}. */
  private long[] lookups() {
    long hits = 0;
    long misses = 0;
    for (int i = 0; i < fleet.members().size(); i++) {
      if (!isRunning(i)) continue;
      hits += fleet.members().get(i).node().images().numHits();
      misses += fleet.members().get(i).node().images().numMisses();
    }
    return new long[] {hits, misses};
  }

  // ---- observing the nodes -------------------------------------------------------------------------------------

  /** Indexes of the running nodes whose cache holds {@code image} (a lookup on each: it counts in their metrics). */
  private List<Integer> holders(Image image) {
    List<Integer> holders = new ArrayList<>();
    for (int i = 0; i < fleet.members().size(); i++) {
      if (isRunning(i) && fleet.members().get(i).node().images().lookup(image.digest()).isPresent()) holders.add(i);
    }
    return holders;
  }

  private boolean isRunning(int i) {
    return !fleet.isStopped(i);
  }

  /** Images the vision encoder encoded, over every node (stopped ones included). */
  private long numImagesEncoded() {
    long n = 0;
    for (int i = 0; i < fleet.members().size(); i++) n += encodedOn(i);
    return n;
  }

  private long encodedOn(int i) {
    TestNode m = fleet.members().get(i);
    int viewsPerImage = m.runtime().spec().vision().numViews();
    return m.runtime().encodeCalls().stream().mapToInt(Integer::intValue).sum() / viewsPerImage;
  }

  private static int mostLoaded(Map<Image, Integer> owners) {
    Map<Integer, Integer> counts = new ConcurrentHashMap<>();
    owners.values().forEach(o -> counts.merge(o, 1, Integer::sum));
    return counts.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
  }
}
