import type { Config } from "./types";

/** The banner's styles, inside its shadow root so the site's CSS cannot reach them. */
export const css = (t: Config["theme"]) => `
:host{all:initial}
*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
dialog{max-width:min(40rem,calc(100vw - 2rem));max-height:calc(100vh - 2rem);overflow:auto;margin:auto auto 1rem;padding:1.25rem 1.5rem;border:1px solid #767676;border-radius:.75rem;background:${t.background};color:${t.text};font-size:1rem;line-height:1.5;box-shadow:0 .5rem 2rem rgba(0,0,0,.3)}
dialog::backdrop{background:rgba(0,0,0,.25)}
h2{font-size:1.25rem;margin:0 0 .5rem}
p{margin:0 0 .75rem}
.note{font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1rem}
.btn{flex:1 1 9rem;min-height:2.75rem;padding:.5rem 1rem;border:2px solid ${t.accent};border-radius:.5rem;background:${t.accent};color:#fff;font-size:1rem;font-weight:600;cursor:pointer}
.btn:hover{filter:brightness(1.1)}
dialog:focus{outline:none}
:focus-visible{outline:3px solid ${t.text};outline-offset:2px}
ul{list-style:none;margin:0;padding:0}
li{padding:.75rem 0;border-top:1px solid #d0d0d0}
label{display:flex;gap:.75rem;align-items:center;font-weight:600;cursor:pointer}
input{width:1.25rem;height:1.25rem;margin:0;accent-color:${t.accent}}
.d{margin:.25rem 0 0 2rem;font-size:.9375rem}
.v{margin:.25rem 0 0 2rem;font-size:.875rem}
a{color:inherit}
#s{position:fixed;left:1rem;bottom:1rem;z-index:2147483646;padding:.4rem .8rem;border:1px solid #767676;border-radius:1rem;background:${t.background};color:${t.text};font-size:.875rem;cursor:pointer}
`;
