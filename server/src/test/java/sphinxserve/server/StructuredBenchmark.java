package sphinxserve.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.GenerateRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import sphinxserve.api.EngineRequest;
import sphinxserve.api.FinishReason;
import sphinxserve.api.ModelSpec;
import sphinxserve.api.SamplingParams;
import sphinxserve.api.TokenConstraint;
import sphinxserve.api.TokenLogprob;
import sphinxserve.api.TokenSink;
import sphinxserve.api.Usage;
import sphinxserve.kvcache.KvCacheManager;
import sphinxserve.kvcache.KvCacheStorage;
import sphinxserve.runtime.bundle.Bundle;
import sphinxserve.runtime.bundle.BundleBuilder;
import sphinxserve.runtime.bundle.BundlePreset;
import sphinxserve.runtime.engine.OnnxModelRuntime;
import sphinxserve.runtime.engine.RuntimeOptions;
import sphinxserve.scheduler.Engine;
import sphinxserve.scheduler.EngineConfig;
import sphinxserve.server.generate.ConstraintCompiler;
import sphinxserve.structured.CompiledGrammar;
import sphinxserve.structured.Grammar;
import sphinxserve.structured.GrammarMatcher;
import sphinxserve.structured.Grammars;
import sphinxserve.structured.JsonSchemaGrammar;
import sphinxserve.structured.TokenVocabulary;

/**
 * The structured-output benchmark ({@code bin/bench-structured}): what a 20-property JSON schema costs on the
 * {@code bench} bundle (real ONNX Runtime, real 32k byte-level BPE vocabulary), driving the scheduler's
 * {@link Engine} in process.
 *
 * <ul>
 *   <li><b>Compile</b>: the schema through {@code JsonSchemaGrammar} (JSON Schema → GBNF), {@code Grammar.gbnf}
 *       (parse) and {@code Grammars.compile} over the vocabulary, cold (first in the JVM) and warm (median);
 *       then {@link ConstraintCompiler}'s first compile of the request (miss) and the same request again (a
 *       Caffeine hit: hashing the schema text).
 *   <li><b>Decode throughput</b> at each batch size: the same prompts, greedy, constrained by the schema
 *       (every string has a {@code minLength}, so each answer is hundreds of tokens and ends with EOS where the
 *       grammar allows it) against unconstrained with {@code ignore_eos} and {@code min_tokens = max_tokens} =
 *       that request's constrained answer length, so both runs generate exactly the same number of tokens per
 *       request. One warm-up pair (the constrained run computes the masks cold: reported, not counted), then
 *       {@code --rounds} interleaved pairs, A/B then B/A alternately (so an order effect cancels); each pair's
 *       ratio is printed so the machine's noise shows as spread. {@code --max-tokens N} cuts every answer at N
 *       tokens (both runs still generate the same number) to keep batch 32 short. Per run: output tokens/s
 *       (first submit to last token), the engine's time per step outside {@code ModelRuntime.step} (planning,
 *       sampling with the mask, emitting), and the grammar's mask cache hits/misses and the time its misses
 *       took; at the end, that outside time constrained minus unconstrained per token: the mask's cost as the
 *       engine sees it, and the ratio it makes with the model's step time taken equal in both runs (the model
 *       step does not depend on the mask; on a shared machine its noise swamps the whole-run ratio).
 *   <li><b>Mask per token</b>: the last batch's answers replayed through matchers ({@code fillAllowed} +
 *       {@code accept} per token) on a freshly compiled grammar (every new configuration a miss: a walk of the
 *       vocabulary trie) and on the warm one (every mask a cache hit).
 * </ul>
 *
 * <p>Run: {@code bin/bench-structured [--batches 1,32] [--rounds 3] [--prompt-tokens 64] [--compile-runs 20]
 * [--max-tokens N] [--bundle DIR]} (builds {@code .bench/bundles/bench} on first use). Results: docs/PERFORMANCE.md,
 * "Structured outputs".
 */
public final class StructuredBenchmark {

  /** Longest constrained answer, tokens (the schema bounds the answer far below this). */
  private static final int MAX_ANSWER_TOKENS = 2048;

  private static final ObjectMapper JSON = new ObjectMapper();

  private StructuredBenchmark() {}

  /** One request's tokens, their arrival times and how it ended. */
  private static final class Recorder implements TokenSink {
    final List<Long> tokenNanos = new ArrayList<>();
    final List<Integer> tokenIds = new ArrayList<>();
    final StringBuilder text = new StringBuilder();
    volatile FinishReason reason;
    volatile String message;

    @Override
    public synchronized void onTokens(String piece, int[] ids, List<TokenLogprob> logprobs) {
      long now = System.nanoTime();
      text.append(piece);
      for (int id : ids) {
        tokenNanos.add(now);
        tokenIds.add(id);
      }
    }

    @Override
    public void onFinish(FinishReason finish, Usage usage, String why) {
      message = why;
      reason = finish;
    }
  }

  /** One run's measurements. */
  private record Run(double tokensPerSecond, long tokens, double overheadMsPerStep, double stepMs, long stepNanos, long overheadNanos,
      CompiledGrammar.MaskStats masks, List<Recorder> answers) {}

  /**
   * A 20-property object of real-world shape: strings with length bounds and formats, an enum, integers and a
   * number with bounds, a boolean, an array of strings; every property required, in declared order.
   */
  static String schema() {
    return """
        {"type": "object", "additionalProperties": false,
         "properties": {
          "id": {"type": "string", "format": "uuid"},
          "title": {"type": "string", "minLength": 40, "maxLength": 64},
          "summary": {"type": "string", "minLength": 60, "maxLength": 96},
          "author": {"type": "string", "minLength": 16, "maxLength": 32},
          "email": {"type": "string", "format": "email"},
          "created": {"type": "string", "format": "date-time"},
          "status": {"enum": ["draft", "review", "published", "archived"]},
          "priority": {"type": "integer", "minimum": 1, "maximum": 5},
          "score": {"type": "number", "minimum": 0, "maximum": 100},
          "public": {"type": "boolean"},
          "category": {"type": "string", "minLength": 24, "maxLength": 40},
          "city": {"type": "string", "minLength": 24, "maxLength": 40},
          "country": {"type": "string", "minLength": 24, "maxLength": 40},
          "language": {"type": "string", "minLength": 16, "maxLength": 24},
          "publisher": {"type": "string", "minLength": 32, "maxLength": 48},
          "reviewer": {"type": "string", "minLength": 32, "maxLength": 48},
          "notes": {"type": "string", "minLength": 60, "maxLength": 96},
          "version": {"type": "integer", "minimum": 0, "maximum": 10000},
          "tags": {"type": "array", "items": {"type": "string", "minLength": 8, "maxLength": 16},
                   "minItems": 3, "maxItems": 5},
          "checksum": {"type": "string", "pattern": "^[0-9a-f]{32}$"}
         },
         "required": ["id", "title", "summary", "author", "email", "created", "status", "priority", "score",
                      "public", "category", "city", "country", "language", "publisher", "reviewer", "notes",
                      "version", "tags", "checksum"]}
        """;
  }

  public static void main(String[] args) throws Exception {
    int[] batches = {1, 32};
    int rounds = 3;
    int promptTokens = 64;
    int compileRuns = 20;
    int maxTokens = 0;
    Path dir = Path.of(".bench/bundles/bench");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--batches" -> batches = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--prompt-tokens" -> promptTokens = Integer.parseInt(args[++i]);
        case "--compile-runs" -> compileRuns = Integer.parseInt(args[++i]);
        case "--max-tokens" -> maxTokens = Integer.parseInt(args[++i]);
        case "--bundle" -> dir = Path.of(args[++i]);
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (rounds < 1 || promptTokens < 2 || compileRuns < 1 || maxTokens < 0 || maxTokens > MAX_ANSWER_TOKENS) {
      throw new IllegalArgumentException("--rounds, --prompt-tokens, --compile-runs: positive; --max-tokens: 0 (to EOS) to " + MAX_ANSWER_TOKENS);
    }
    if (!Files.exists(dir.resolve("bundle.json"))) BundleBuilder.build(BundlePreset.BENCH, 1, dir);
    Bundle bundle = Bundle.open(dir);
    ModelSpec spec = bundle.spec();
    int maxBatch = Arrays.stream(batches).max().orElseThrow();
    int numBlocks = maxBatch * ((promptTokens + MAX_ANSWER_TOKENS) / 16 + 2) + 64;
    try (KvCacheStorage storage = new KvCacheStorage(OnnxModelRuntime.kvLayoutFor(spec, 16, numBlocks));
        OnnxModelRuntime runtime = OnnxModelRuntime.open(bundle, RuntimeOptions.cpu(), storage)) {
      long t0 = System.nanoTime();
      TokenVocabulary vocabulary = TokenVocabulary.of(runtime.tokenizer(), spec.specialTokens().eosIds());
      System.out.printf(Locale.ROOT, "vocabulary: %,d tokens, trie built in %.1f ms%n", vocabulary.size(), (System.nanoTime() - t0) / 1e6);

      compileTimes(vocabulary, compileRuns);
      TokenConstraint constraint = cacheHit(vocabulary, compileRuns);
      CompiledGrammar grammar = (CompiledGrammar) constraint;

      System.out.println();
      System.out.println("| batch | run | constrained tokens/s | unconstrained tokens/s | ratio | tokens | overhead ms/step constrained | unconstrained | mask hits | misses | miss ms |");
      System.out.println("|---|---|---|---|---|---|---|---|---|---|---|");
      List<Recorder> answers = null;
      List<String> maskCosts = new ArrayList<>();
      for (int batch : batches) {
        List<int[]> prompts = prompts(batch, promptTokens, spec, 2026L + batch);
        double[] ratios = new double[rounds];
        double[] engineCost = new double[rounds];
        double[] modelEqualRatios = new double[rounds];
        int[] lengths = null;
        double warmUpRatio = 0;
        for (int round = 0; round <= rounds; round++) {
          // The warm-up pair and odd rounds run A then B, even rounds B then A: an order effect cancels out.
          boolean constrainedFirst = round == 0 || round % 2 == 1;
          Run b = constrainedFirst ? null : run(runtime, storage, prompts, null, lengths, 0);
          Run a = run(runtime, storage, prompts, grammar, null, maxTokens);
          int[] answered = a.answers().stream().mapToInt(r -> r.tokenIds.size()).toArray();
          if (lengths != null && !Arrays.equals(lengths, answered)) throw new IllegalStateException("greedy answers changed length between rounds");
          lengths = answered;
          if (constrainedFirst) b = run(runtime, storage, prompts, null, lengths, 0);
          if (b.tokens() != a.tokens()) throw new IllegalStateException("unequal runs: " + a.tokens() + " vs " + b.tokens() + " tokens");
          double ratio = a.tokensPerSecond() / b.tokensPerSecond();
          if (round == 0) warmUpRatio = modelEqualRatio(a, b);
          if (round > 0) {
            ratios[round - 1] = ratio;
            engineCost[round - 1] = (a.overheadNanos() - b.overheadNanos()) / 1e3 / a.tokens();
            modelEqualRatios[round - 1] = modelEqualRatio(a, b);
          }
          System.out.printf(Locale.ROOT, "| %d | %s | %.1f | %.1f | %.3f | %,d | %.3f of %.2f | %.3f of %.2f | %,d | %,d | %.1f |%n", batch,
              round == 0 ? "warm-up" : (constrainedFirst ? "A/B " : "B/A ") + round, a.tokensPerSecond(), b.tokensPerSecond(), ratio, a.tokens(),
              a.overheadMsPerStep(), a.stepMs(), b.overheadMsPerStep(), b.stepMs(), a.masks().hits(), a.masks().misses(),
              a.masks().missNanos() / 1e6);
          answers = a.answers();
        }
        System.out.printf(Locale.ROOT, "| %d | **median of %d** | | | **%.3f** (min %.3f, max %.3f) | | | | | | |%n", batch, rounds,
            median(ratios), Arrays.stream(ratios).min().orElseThrow(), Arrays.stream(ratios).max().orElseThrow());
        maskCosts.add(String.format(Locale.ROOT, "batch %d: %.1f µs per token, ratio with the model's time equal %.3f (median over the "
            + "measured pairs); warm-up pair (cold masks): %.3f", batch, median(engineCost), median(modelEqualRatios), warmUpRatio));
      }
      System.out.println();
      System.out.println("mask cost in the engine (time outside ModelRuntime.step, constrained minus unconstrained, per generated token),");
      System.out.println("and the throughput ratio it makes with the model's step time taken equal:");
      for (String line : maskCosts) System.out.println("  " + line);
      checkAnswers(answers);
      maskPerToken(grammar, answers);
    }
  }

  /** Compile time of the schema: conversion, parse and compile, cold once then {@code runs} times warm. */
  private static void compileTimes(TokenVocabulary vocabulary, int runs) throws Exception {
    JsonNode schema = JSON.readTree(schema());
    double[] convert = new double[runs + 1];
    double[] parse = new double[runs + 1];
    double[] compile = new double[runs + 1];
    int elements = 0;
    for (int i = 0; i <= runs; i++) {
      long t0 = System.nanoTime();
      String gbnf = JsonSchemaGrammar.gbnf(schema);
      long t1 = System.nanoTime();
      Grammar grammar = Grammar.gbnf(gbnf);
      long t2 = System.nanoTime();
      CompiledGrammar compiled = Grammars.compile(grammar, vocabulary);
      long t3 = System.nanoTime();
      convert[i] = (t1 - t0) / 1e6;
      parse[i] = (t2 - t1) / 1e6;
      compile[i] = (t3 - t2) / 1e6;
      elements = compiled.programSize();
    }
    double[] total = new double[runs + 1];
    for (int i = 0; i <= runs; i++) total[i] = convert[i] + parse[i] + compile[i];
    System.out.printf(Locale.ROOT, "%n20-property schema (%,d bytes of JSON, %,d program elements), ms:%n", schema().length(), elements);
    System.out.println("| step | cold (first in the JVM) | warm median | warm min |");
    System.out.println("|---|---|---|---|");
    row("JsonSchemaGrammar.gbnf (schema → GBNF)", convert);
    row("Grammar.gbnf (parse)", parse);
    row("Grammars.compile (32k vocabulary)", compile);
    row("**total**", total);
  }

  /**
   * Constrained ÷ unconstrained throughput had the model steps taken the same time in both runs: B's engine time
   * over B's plus what A spent outside the model beyond B. The model step does not depend on the mask, so this is
   * the mask's effect without the shared machine's noise on the model.
   */
  private static double modelEqualRatio(Run a, Run b) {
    return (double) b.stepNanos() / (b.stepNanos() + a.overheadNanos() - b.overheadNanos());
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  private static void row(String name, double[] ms) {
    double[] warm = Arrays.copyOfRange(ms, 1, ms.length);
    System.out.printf(Locale.ROOT, "| %s | %.2f | %.2f | %.2f |%n", name, ms[0], median(warm), Arrays.stream(warm).min().orElseThrow());
  }

  /** ConstraintCompiler: the first compile of the request (a miss), then the same request again (hits). */
  private static TokenConstraint cacheHit(TokenVocabulary vocabulary, int runs) {
    ConstraintCompiler compiler = new ConstraintCompiler(() -> vocabulary);
    GenerateRequest request = GenerateRequest.newBuilder()
        .setSampling(dev.sphinxserve.proto.v1.SamplingParams.newBuilder()
            .setConstraint(Constraint.newBuilder().setJsonSchema(schema())))
        .build();
    long t0 = System.nanoTime();
    TokenConstraint first = compiler.compile(request, null);
    double missMs = (System.nanoTime() - t0) / 1e6;
    int hits = Math.max(1000, runs * 100);
    double[] us = new double[hits];
    for (int i = 0; i < hits; i++) {
      long t = System.nanoTime();
      TokenConstraint again = compiler.compile(request, null);
      us[i] = (System.nanoTime() - t) / 1e3;
      if (again != first) throw new IllegalStateException("the second compile of the same schema was not a cache hit");
    }
    Arrays.sort(us);
    System.out.printf(Locale.ROOT, "%nConstraintCompiler: first compile (cache miss) %.2f ms; the same request again (cache hit, %,d times): "
        + "p50 %.1f µs, p99 %.1f µs; Caffeine %s%n", missMs, hits, us[hits / 2], us[(int) (hits * 0.99)], compiler.stats());
    return first;
  }

  /** {@code n} prompts of {@code length} random ids (BOS first), the same for every run of a batch size. */
  private static List<int[]> prompts(int n, int length, ModelSpec spec, long seed) {
    SplittableRandom random = new SplittableRandom(seed);
    List<int[]> prompts = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int[] prompt = new int[length];
      prompt[0] = spec.specialTokens().bos();
      for (int k = 1; k < length; k++) prompt[k] = 5 + random.nextInt(spec.vocabSize() - 5);
      prompts.add(prompt);
    }
    return prompts;
  }

  /**
   * Serves {@code prompts} at once, greedy: constrained by {@code grammar} (to EOS, or at most {@code maxTokens}
   * when positive), or (grammar null) unconstrained with exactly {@code lengths[i]} tokens each.
   */
  private static Run run(OnnxModelRuntime runtime, KvCacheStorage storage, List<int[]> prompts, CompiledGrammar grammar,
      int[] lengths, int maxTokens) throws Exception {
    KvCacheManager kv = new KvCacheManager(storage, false); // every run computes its prompts
    List<Recorder> recorders = new ArrayList<>();
    CompiledGrammar.MaskStats before = grammar == null ? null : grammar.maskStats();
    EngineConfig config = EngineConfig.defaults().withMaxNumSeqs(prompts.size()).withMaxWaiting(prompts.size());
    try (Engine engine = new Engine(runtime, kv, config).start()) {
      long start = System.nanoTime();
      for (int i = 0; i < prompts.size(); i++) {
        SamplingParams.Builder params = SamplingParams.builder().temperature(0f).seed(i);
        if (grammar != null) {
          params.maxTokens(maxTokens > 0 ? maxTokens : MAX_ANSWER_TOKENS).constraint(grammar);
        } else {
          params.maxTokens(lengths[i]).minTokens(lengths[i]).ignoreEos(true);
        }
        Recorder recorder = new Recorder();
        recorders.add(recorder);
        Engine.Admission admission = engine.submit(new EngineRequest((grammar != null ? "c-" : "u-") + i, prompts.get(i), null, 0,
            params.build(), 0, Long.MAX_VALUE, null, recorder));
        if (!(admission instanceof Engine.Admission.Accepted)) throw new IllegalStateException("refused: " + admission);
      }
      long steps0 = engine.stats().numSteps();
      while (!recorders.stream().allMatch(r -> r.reason != null)) Thread.sleep(1);
      for (Recorder r : recorders) {
        if (r.reason == FinishReason.ERROR) throw new IllegalStateException("request failed: " + r.message);
        if (grammar != null && maxTokens == 0 && r.reason != FinishReason.STOP) {
          throw new IllegalStateException("a constrained answer ended by " + r.reason + ", not at the grammar's end: raise MAX_ANSWER_TOKENS");
        }
      }
      long end = recorders.stream().mapToLong(r -> r.tokenNanos.getLast()).max().orElseThrow();
      long tokens = recorders.stream().mapToLong(r -> r.tokenIds.size()).sum();
      long steps = engine.stats().numSteps() - steps0;
      double stepMs = engine.stats().stepNanos() / 1e6 / steps;
      double overheadMs = (engine.stats().stepNanos() - engine.stats().modelNanos()) / 1e6 / steps;
      CompiledGrammar.MaskStats masks = grammar == null ? new CompiledGrammar.MaskStats(0, 0, 0) : minus(grammar.maskStats(), before);
      long overheadNanos = engine.stats().stepNanos() - engine.stats().modelNanos();
      return new Run(tokens / ((end - start) / 1e9), tokens, overheadMs, stepMs, engine.stats().stepNanos(), overheadNanos, masks, recorders);
    }
  }

  private static CompiledGrammar.MaskStats minus(CompiledGrammar.MaskStats after, CompiledGrammar.MaskStats before) {
    return new CompiledGrammar.MaskStats(after.hits() - before.hits(), after.misses() - before.misses(), after.missNanos() - before.missNanos());
  }

  /** Every complete constrained answer parses as a JSON object with the schema's 20 properties; prints the first. */
  private static void checkAnswers(List<Recorder> answers) throws Exception {
    for (Recorder r : answers) {
      if (r.reason != FinishReason.STOP) continue; // cut by --max-tokens
      JsonNode value = JSON.readTree(r.text.toString());
      if (!value.isObject() || value.size() != 20) throw new IllegalStateException("not the schema's object: " + r.text);
    }
    String first = answers.getFirst().text.toString();
    System.out.printf(Locale.ROOT, "%ncomplete constrained answers parse (%d of %d checked); the first, %,d tokens, %,d bytes: %s%n",
        answers.stream().filter(r -> r.reason == FinishReason.STOP).count(), answers.size(),
        answers.getFirst().tokenIds.size(), first.getBytes(StandardCharsets.UTF_8).length, first);
  }

  /**
   * Replays the answers through fresh matchers, fillAllowed + accept per token: the first four on a freshly
   * compiled grammar (every new configuration a mask miss: a trie walk; best of 3), then all on the warm one
   * (every mask a hit; best of 5).
   */
  private static void maskPerToken(CompiledGrammar warm, List<Recorder> answers) {
    long tokens = answers.stream().mapToLong(r -> r.tokenIds.size()).sum();
    List<Recorder> few = answers.subList(0, Math.min(4, answers.size())); // a miss costs a trie walk: keep it short
    long fewTokens = few.stream().mapToLong(r -> r.tokenIds.size()).sum();
    long bestCold = Long.MAX_VALUE;
    CompiledGrammar.MaskStats cold = null;
    for (int rep = 0; rep < 3; rep++) {
      CompiledGrammar fresh = Grammars.compile(warm.grammar(), warm.vocabulary());
      long t0 = System.nanoTime();
      replay(fresh, few);
      long t = System.nanoTime() - t0;
      if (t < bestCold) {
        bestCold = t;
        cold = fresh.maskStats();
      }
    }
    long bestWarm = Long.MAX_VALUE;
    CompiledGrammar.MaskStats before = warm.maskStats();
    for (int rep = 0; rep < 5; rep++) {
      long t0 = System.nanoTime();
      replay(warm, answers);
      bestWarm = Math.min(bestWarm, System.nanoTime() - t0);
    }
    CompiledGrammar.MaskStats hits = minus(warm.maskStats(), before);
    System.out.println("mask per token, replaying the last batch's answers (fillAllowed + accept per token):");
    System.out.printf(Locale.ROOT, "  fresh grammar, %,d tokens of %d answers, best of 3: %.1f µs per token (%,d hits, %,d misses; %.0f µs per miss)%n",
        fewTokens, few.size(), bestCold / 1e3 / fewTokens,
        cold.hits(), cold.misses(), cold.missNanos() / 1e3 / Math.max(1, cold.misses()));
    System.out.printf(Locale.ROOT, "  warm grammar, all %,d tokens, best of 5: %.2f µs per token (%,d hits, %,d misses over the 5 replays)%n", tokens,
        bestWarm / 1e3 / tokens,
        hits.hits(), hits.misses());
  }

  private static void replay(CompiledGrammar grammar, List<Recorder> answers) {
    long[] bits = new long[(grammar.vocabulary().size() + 63) >>> 6];
    for (Recorder r : answers) {
      GrammarMatcher matcher = (GrammarMatcher) grammar.newMatcher();
      for (int id : r.tokenIds) {
        matcher.fillAllowed(bits);
        if (!matcher.accept(id)) throw new IllegalStateException("replay: token " + id + " refused");
      }
    }
  }
}
