// The fragment's one script, an enhancement only: times in the reader's zone and locale.
// Without it the fragment reads the same, with its times in UTC.
import { localizeTimes } from '../render.js';

localizeTimes(document);
