import Foundation
import Testing

/// pipelines/alphanet.mk as a plan (make -n): the chain in order, the ImageNet variables,
/// atomic outputs. The pipeline itself runs in Scripts/check-quick-pipeline (release build).
@Suite struct PipelineMakefileTests {
    func plan(_ h: ToolHarness, _ vars: [String]) throws -> ToolHarness.Result {
        try h.runExecutable("/usr/bin/make", ["-n", "-C", ToolHarness.repo, "-f", "pipelines/alphanet.mk",
                                              "OUT=\(h.path("out"))", "BIN=\(ToolHarness.binDir)"] + vars)
    }

    @Test func defaultPlanRunsTheWholeChainInOrder() throws {
        let h = try ToolHarness()
        let r = try plan(h, [])
        #expect(r.status == 0, "\(r.stderr)")
        let order = ["Scripts/demo-data", "train-supernet", "estimate-acc", "fit-predictor", "evo-search", "predict-acc", "pareto-front", "plot-pareto"]
        var last = r.stdout.startIndex
        for tool in order {
            guard let at = r.stdout.range(of: tool, range: last..<r.stdout.endIndex) else {
                Issue.record("\(tool) missing or out of order in the plan:\n\(r.stdout)")
                return
            }
            last = at.upperBound
        }
        // The demo recipe's space and estimation settings (pipelines/demo-recipe.mk).
        #expect(r.stdout.contains("sample-subnets --space pipelines/spaces/demo.json --min --max -n 128"))
        #expect(r.stdout.contains("--calib-batches 4 --batch-size 128") && !r.stdout.contains("--val-limit"))
        #expect(r.stdout.contains("fit-predictor --model gbdt --features official,flops"))
        #expect(r.stdout.contains("--front-size 32"))
        #expect(r.stdout.contains("--total-steps"))
    }

    /// Without the demo recipe's values the pipeline's own defaults apply (ImageNet runs
    /// skip the recipe): the tiny space, 512 subnets on 384 images, the whole front.
    @Test func pipelineDefaultsWithoutTheDemoRecipe() throws {
        let h = try ToolHarness()
        let r = try plan(h, ["SPACE=pipelines/spaces/tiny.json", "N_SAMPLE=512", "CALIB_BATCHES=1", "VAL_LIMIT=384", "FEATURES=official", "FRONT_SIZE=0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("sample-subnets --space pipelines/spaces/tiny.json --min --max -n 512"))
        #expect(r.stdout.contains("--calib-batches 1 --batch-size 128 --val-limit 384"))
        #expect(r.stdout.contains("--features official ") && !r.stdout.contains("--front-size"))
    }

    @Test func imagenetVariablesReachTheTools() throws {
        let h = try ToolHarness()
        let r = try plan(h, ["DATASET=imagenet", "SPACE=pipelines/spaces/alphanet.json", "IMAGENET_TRAIN=/d/train.tar",
                             "IMAGENET_VAL=/d/val.tar", "IMAGENET_LABELS=/d/LOC_val_solution.csv", "STEPS=1000", "VAL_LIMIT=0"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("pack-imagenet --size 288 --split train -o \(h.path("out"))/data/train /d/train.tar"))
        #expect(r.stdout.contains("--labels /d/LOC_val_solution.csv"))
        #expect(r.stdout.contains("--space pipelines/spaces/alphanet.json"))
        #expect(!r.stdout.contains("--val-limit"))
        #expect(!r.stdout.contains("demo-data"))
    }

    /// MPIRUN launches the training (and only it); the rank count belongs to the recipe.
    @Test func mpirunLaunchesTheTraining() throws {
        let h = try ToolHarness()
        let r = try plan(h, ["MPIRUN=mpirun -np 4"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("mpirun -np 4 \(ToolHarness.binDir)/train-supernet --space"), "\(r.stdout)")
        #expect(r.stdout.components(separatedBy: "mpirun -np 4").count == 2, "\(r.stdout)")
        let recipe = (try? String(contentsOfFile: h.path("out/.settings/recipe"), encoding: .utf8)) ?? ""
        #expect(recipe.contains("mpirun=mpirun -np 4"), "the recipe settings lack the launcher: \(recipe)")
    }

    @Test func missingToolsAreReportedBeforeAnythingRuns() throws {
        let h = try ToolHarness()
        let r = try h.runExecutable("/usr/bin/make", ["-n", "-C", ToolHarness.repo, "-f", "pipelines/alphanet.mk",
                                                      "OUT=\(h.path("out"))", "BIN=\(h.path("nowhere"))"])
        #expect(r.status != 0 && r.stderr.contains("Scripts/build"))
    }

    /// Every recipe line that redirects stdout writes $@.tmp (then mv), never $@ itself.
    @Test(arguments: ["alphanet.mk", "ablation.mk", "ranking.mk"])
    func redirectedOutputsAreWrittenUnderTemporaryNames(makefile: String) throws {
        let text = try String(contentsOfFile: ToolHarness.repo + "/pipelines/" + makefile, encoding: .utf8)
        var redirects = 0
        for line in text.split(separator: "\n") where line.hasPrefix("\t") && (line.contains("> $@") || line.contains("> $$@")) {
            #expect(line.contains("> $@.tmp") || line.contains("> $$@.tmp"), "\(line)")
            redirects += 1
        }
        #expect(redirects >= 2, "\(makefile): no redirected output found")
    }
}
