# TorchPython.cmake - NORMC_TORCH_PYTHON: a python3 that imports torch and
# numpy, for the PyTorch conformance tests, normrt.torch's tests and the
# torch example. The python3 first on PATH may be another interpreter
# (a virtual environment, pyenv) than Debian's, which has python3-torch, so
# take the first candidate on PATH that can import them.
set(NORMC_TORCH_PYTHON "" CACHE FILEPATH "A python3 that can import torch")
if(NOT NORMC_TORCH_PYTHON)
  execute_process(COMMAND sh -c "which -a python3 python3.11 2>/dev/null"
                  OUTPUT_VARIABLE candidates OUTPUT_STRIP_TRAILING_WHITESPACE)
  string(REPLACE "\n" ";" candidates "${candidates}")
  foreach(candidate IN LISTS candidates)
    execute_process(COMMAND ${candidate} -c "import torch, numpy"
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(rc EQUAL 0)
      set(NORMC_TORCH_PYTHON ${candidate} CACHE FILEPATH "A python3 that can import torch" FORCE)
      break()
    endif()
  endforeach()
endif()
