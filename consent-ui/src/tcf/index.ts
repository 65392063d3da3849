import { register } from "../modules";
import { CmpApi } from "./cmpapi";
import { modelFor } from "./model";
import { decode, encode } from "./tcstring";

/** The TCF module, loaded on demand when the site's config lists TCF vendors. */
const tcf = { CmpApi, modelFor, encode, decode };
export type TcfModule = typeof tcf;
register("tcf", tcf);
