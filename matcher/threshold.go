package matcher

// DefaultFaceThreshold is the default decision threshold on the cosine
// score of dlib ResNet-29 face descriptors (templates.FaceAlgorithm): a
// candidate at or above it is reported as a match.
//
// What it gives, measured (a trade-off, not a guarantee):
//
//   - cast photos (testdata/faces/bbt: 8 people, 1 photo enrolled each, 32
//     probes through the whole pipeline, 224 impostor comparisons):
//     FMR 0/224, FNMR 3.1% (1 of 32).
//   - all labeled photos (../shared/testdata/faces idols and bbt: 26 people,
//     1,104 impostor and 46 genuine comparisons, measured when this
//     threshold was chosen; bmbench verify --data on those folders
//     measures it now): FMR 9.5%, FNMR 4.3%. The false matches are
//     between idols.
//   - testdata/faces/idols/idols.json (1,286 descriptors of 134 K-pop
//     idols, 5 to 19 each, computed by dlib's original model; 5,614
//     genuine and 820,641 impostor pairs; go test ./matcher -run
//     TestIdolsGallery -v): FMR 72%, FNMR 4.6%. dlib's network separates
//     this population poorly (median impostor score 0.939, genuine 0.963;
//     leave-one-out rank-1 66%): FMR 0.1% needs 0.974, where FNMR is 86%,
//     and FMR 0.01% needs 0.979, where FNMR is 95%.
//
// So the default suits a candidate list that an officer reviews, not an
// unattended decision on every population: an e-gate doing 1:1 should set a
// stricter threshold, and every agency should calibrate on its own
// travellers.
const DefaultFaceThreshold float32 = 0.93
