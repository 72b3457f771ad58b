// SPHINX's inline coordinates, read as the client library reads them (client/.../SphinxOutputs.java, simplified):
// "circle[0.12,0.30,0.40,0.62;...]" boxes after a phrase, "left eye[0.46,0.17]" keypoints after their COCO name;
// values normalised to the padded square image.

export const KEYPOINTS = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
  "left_ankle", "right_ankle"];

// COCO's skeleton as pairs of keypoint names.
export const SKELETON = [["left_ankle", "left_knee"], ["left_knee", "left_hip"], ["right_ankle", "right_knee"],
  ["right_knee", "right_hip"], ["left_hip", "right_hip"], ["left_shoulder", "left_hip"], ["right_shoulder", "right_hip"],
  ["left_shoulder", "right_shoulder"], ["left_shoulder", "left_elbow"], ["right_shoulder", "right_elbow"],
  ["left_elbow", "left_wrist"], ["right_elbow", "right_wrist"], ["left_eye", "right_eye"], ["nose", "left_eye"],
  ["nose", "right_eye"], ["left_eye", "left_ear"], ["right_eye", "right_ear"], ["left_ear", "left_shoulder"],
  ["right_ear", "right_shoulder"]];

// Words that end a label read backwards from a bracket (the client library's list, shortened).
const STOP_WORDS = new Set(["a", "an", "the", "this", "that", "these", "those", "there", "here", "it", "is", "are",
  "was", "were", "of", "in", "on", "at", "to", "for", "with", "by", "from", "and", "or", "as", "some", "several",
  "many", "all", "both", "each", "every", "any", "no", "one", "two", "three", "four", "five", "six", "seven", "eight",
  "nine", "ten", "see", "detected", "located", "found", "region", "regions", "box", "boxes", "coordinates",
  "coordinate", "keypoints", "keypoint"]);
const NUMBER = /^\s*(0(\.\d+)?|1(\.0+)?)\s*$/;

/** {regions: [{label, box: [x1, y1, x2, y2]}], keypoints: [{name, x, y}]} of an answer (partial answers too). */
export function parseAnswer(text) {
  const regions = [];
  const keypoints = [];
  let previousEnd = 0;
  const brackets = /\[([^\[\]]*)\]/g;
  let match;
  while ((match = brackets.exec(text)) !== null) {
    const phrase = text.slice(previousEnd, match.index).replace(/<\/?p>/g, " ");
    previousEnd = match.index + match[0].length;
    if (/[^0-9.,; \-]/.test(match[1])) continue; // prose in brackets
    const subject = phrase.split(/[.,;:!?()\n]/).pop().trim().toLowerCase();
    for (const group of match[1].split(";")) {
      const values = group.split(",");
      if (!values.every((v) => NUMBER.test(v))) continue;
      const numbers = values.map(Number);
      if (numbers.length === 4 && numbers[0] <= numbers[2] && numbers[1] <= numbers[3]) {
        regions.push({ label: label(subject), box: numbers });
      } else if (numbers.length === 2) {
        const name = KEYPOINTS.find((k) => subject.replace(/\s+/g, "_").endsWith(k));
        if (name) keypoints.push({ name, x: numbers[0], y: numbers[1] });
      }
    }
  }
  return { regions, keypoints };
}

function label(subject) {
  const words = subject.split(/\s+/).filter(Boolean);
  while (words.length && STOP_WORDS.has(words[words.length - 1])) words.pop();
  const kept = [];
  for (let i = words.length - 1; i >= 0 && kept.length < 4 && !STOP_WORDS.has(words[i]); i--) kept.unshift(words[i]);
  return kept.join(" ");
}

/**
 * A box [x1, y1, x2, y2] normalised to the padded square, in the image's own pixels: the square's side is
 * M = max(w, h) and the image sits at (floor((M − w) / 2), floor((M − h) / 2)), as the node pads it.
 */
export function toPixels(box, width, height) {
  const side = Math.max(width, height);
  const dx = Math.floor((side - width) / 2);
  const dy = Math.floor((side - height) / 2);
  // Clamped to the image, as the client library does: a box reaching into the padding ends at the image's edge.
  const x = (v) => Math.min(Math.max(v * side - dx, 0), width);
  const y = (v) => Math.min(Math.max(v * side - dy, 0), height);
  return [x(box[0]), y(box[1]), x(box[2]), y(box[3])];
}
