# lit configuration for normc's compiler tests: each test is a .norm spec
# (or a .test script) whose first line is its RUN line.
import os

import lit.formats

config.name = 'normc'
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = ['.norm', '.test']
config.excludes = ['Inputs']
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.normc_obj_root, 'test', 'lit')

config.environment['PATH'] = os.pathsep.join(
    [config.normc_tools_dir, config.llvm_tools_dir,
     config.environment.get('PATH', '')])
# `%exitcode CMD...` runs CMD and prints "exit code: N" instead of failing,
# so a test can check that spec errors exit with 1 and I/O errors with 2.
config.substitutions.append(
    ('%exitcode', 'sh ' + os.path.join(config.test_source_root, 'Inputs',
                                       'exit-code.sh')))
config.substitutions.append(('%normrt_lib', config.normrt_lib))
