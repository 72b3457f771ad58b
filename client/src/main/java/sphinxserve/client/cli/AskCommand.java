package sphinxserve.client.cli;

import dev.sphinxserve.proto.v1.Choices;
import dev.sphinxserve.proto.v1.Constraint;
import dev.sphinxserve.proto.v1.GenerateResponse;
import dev.sphinxserve.proto.v1.SamplingParams;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import sphinxserve.client.Answer;
import sphinxserve.client.GenerationHandle;
import sphinxserve.client.GenerationListener;
import sphinxserve.client.SphinxClient;
import sphinxserve.client.outputs.Keypoint;
import sphinxserve.client.outputs.PadToSquare;
import sphinxserve.client.outputs.ParsedAnswer;
import sphinxserve.client.outputs.PixelBox;
import sphinxserve.client.outputs.PixelPoint;
import sphinxserve.client.outputs.Region;
import sphinxserve.client.outputs.Skipped;

/**
 * {@code ask}: streams the answer to standard output as it arrives, then lists the regions and keypoints found, in
 * pixels of the image, on standard error; {@code --annotate} draws them.
 */
@Command(name = "ask", mixinStandardHelpOptions = true,
    description = "Ask a question about an image (or, for a text model, without one); the answer streams as it is generated.")
final class AskCommand implements Callable<Integer> {
  @Mixin
  ConnectionOptions connection;

  @Spec
  CommandSpec spec;

  @Option(names = {"-i", "--image"}, paramLabel = "FILE", description = "The image (JPEG, PNG…); leave it out for a text-only model.")
  Path image;

  @Option(names = "--annotate", paramLabel = "OUT.png",
      description = "Write a copy of the image with the boxes, keypoints and skeleton drawn on it.")
  Path annotate;

  @Option(names = "--max-tokens", paramLabel = "N", description = "Most tokens to generate (default: the node's).")
  int maxTokens;

  @Option(names = "--temperature", paramLabel = "T", description = "0 = greedy (default).")
  float temperature;

  @Option(names = "--seed", paramLabel = "S", description = "Makes sampling reproducible.")
  Long seed;

  @Option(names = "--json-schema", paramLabel = "FILE",
      description = "Constrain the answer to JSON that this JSON Schema (a file) accepts.")
  Path jsonSchema;

  @Option(names = "--json", description = "Constrain the answer to a JSON object.")
  boolean json;

  @Option(names = "--regex", paramLabel = "REGEX", description = "Constrain the answer to match this regular expression.")
  String regex;

  @Option(names = "--choice", paramLabel = "TEXT", split = "\\|",
      description = "Constrain the answer to one of these strings (repeat the option, or separate them with |).")
  List<String> choice;

  @Option(names = "--grammar", paramLabel = "FILE", description = "Constrain the answer to this GBNF grammar (a file; start rule root).")
  Path grammar;

  @Option(names = "--grounded",
      description = "Constrain the answer to SPHINX's grounded syntax, so every box and keypoint in it parses (coordinates 0.00-1.00).")
  boolean grounded;

  @Parameters(arity = "1..*", paramLabel = "QUESTION", description = "The question; several words are joined.")
  List<String> question;

  @Override
  public Integer call() throws IOException {
    if (image == null && annotate != null) throw new UserError("--annotate needs --image");
    LoadedImage loaded = image == null ? null : LoadedImage.read(image);
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    SamplingParams.Builder sampling = SamplingParams.newBuilder().setMaxTokens(maxTokens)
        .setTemperature(temperature);
    if (seed != null) {
      sampling.setSeed(seed);
    }
    Constraint constraint = constraint();
    if (constraint != null) sampling.setConstraint(constraint);
    try (SphinxClient client = connection.client()) {
      GenerationHandle handle = client.generate(
          Requests.ask(loaded == null ? null : loaded.image(), String.join(" ", question), sampling.build()), new GenerationListener() {
            @Override
            public void onResponse(GenerateResponse response) {
              out.print(response.getText());
              out.flush();
            }
          });
      Answer answer = Requests.await(handle);
      out.println();
      out.flush();
      if (loaded == null) return 0;
      ParsedAnswer parsed = answer.outputs();
      report(parsed, PadToSquare.of(loaded.decoded().getWidth(), loaded.decoded().getHeight()), err);
      if (annotate != null) {
        Annotator.drawTo(loaded.decoded(), parsed, annotate);
        err.println("annotated image written to " + annotate);
      }
      err.flush();
    }
    return 0;
  }

  /** The constraint the options ask for, or null; at most one of them. */
  private Constraint constraint() throws IOException {
    List<Constraint> asked = new java.util.ArrayList<>();
    if (jsonSchema != null) asked.add(Constraint.newBuilder().setJsonSchema(java.nio.file.Files.readString(jsonSchema)).build());
    if (json) asked.add(Constraint.newBuilder().setJsonObject(true).build());
    if (regex != null) asked.add(Constraint.newBuilder().setRegex(regex).build());
    if (choice != null && !choice.isEmpty()) asked.add(Constraint.newBuilder().setChoice(Choices.newBuilder().addAllValues(choice)).build());
    if (grammar != null) asked.add(Constraint.newBuilder().setGrammar(java.nio.file.Files.readString(grammar)).build());
    if (grounded) asked.add(Constraint.newBuilder().setGrounded(true).build());
    if (asked.size() > 1) throw new UserError("choose one of --json-schema, --json, --regex, --choice, --grammar, --grounded");
    return asked.isEmpty() ? null : asked.getFirst();
  }

  private static void report(ParsedAnswer parsed, PadToSquare pad, PrintWriter err) {
    if (!parsed.regions().isEmpty()) {
      err.printf("regions (pixels of the %dx%d image):%n", pad.width(), pad.height());
      for (Region r : parsed.regions()) {
        PixelBox b = pad.toPixels(r.box());
        err.printf(Locale.ROOT, "  %-16s [%.0f, %.0f, %.0f, %.0f]%n", r.label().isEmpty() ? "(unnamed)" : r.label(),
            b.x1(), b.y1(), b.x2(), b.y2());
      }
    }
    if (!parsed.keypoints().isEmpty()) {
      err.printf("keypoints (pixels of the %dx%d image):%n", pad.width(), pad.height());
      for (Keypoint k : parsed.keypoints()) {
        PixelPoint p = pad.toPixels(k.point());
        err.printf(Locale.ROOT, "  %-16s (%.0f, %.0f)%n", k.name(), p.x(), p.y());
      }
    }
    for (Skipped s : parsed.skipped()) {
      err.printf("skipped '%s' at %d: %s%n", s.fragment(), s.offset(), s.reason());
    }
  }
}
