// The feed index: only its times need the reader's time zone.
import { localizeTimes } from './render.js';

localizeTimes(document);
