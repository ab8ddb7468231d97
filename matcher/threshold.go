package matcher

// DefaultFaceThreshold is the default decision threshold on the cosine
// score of dlib ResNet-29 face descriptors (templates.FaceAlgorithm): a
// candidate at or above it is reported as a match.
//
// What it gives, measured (it is a trade-off, not a guarantee):
//
//   - labeled photos (testdata/faces/idols and bbt, 73 photos of 26 people,
//     one enrolled per person, 1,104 impostor and 46 genuine comparisons
//     through the whole pipeline; go test ./benchmarks -run
//     TestLabeledPhotos -v -data ../shared/testdata/faces):
//     FMR 5.5%, FNMR 17%.
//   - idols.json (1,286 descriptors of 552 young Korean women, computed by
//     dlib's original model; go test ./matcher -run TestIdolsGallery -v):
//     FMR 48%, FNMR 9%. dlib's network separates faces of this population
//     poorly: FMR 0.1% needs 0.974, where FNMR is 86%.
//
// So the default suits a candidate list that an officer reviews, not an
// unattended 1:1 decision: an e-gate should pass a stricter threshold
// (0.96 gave FMR 0.36% on the labeled photos) and every agency should
// calibrate on its own population.
const DefaultFaceThreshold float32 = 0.94
