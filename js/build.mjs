// Bundle each widget entry (and its CSS) into ../viagent_jupyter/static/ with esbuild.
// Everything is bundled: no CDN import at run time (notebooks are often offline).
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
export const options = {
  absWorkingDir: here,
  // one stylesheet for both widgets (not one copy per entry)
  entryPoints: {
    config_panel: "src/config_panel.js",
    stats_bar: "src/stats_bar.js",
    widgets: "src/widgets.css",
  },
  outdir: "../viagent_jupyter/static",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: process.env.VJ_MINIFY !== "0",
  legalComments: "none",
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context({ ...options, minify: false });
  await ctx.watch();
} else {
  await esbuild.build(options);
}
