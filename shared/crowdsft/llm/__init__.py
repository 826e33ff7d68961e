"""The language-model path's pure part: what an LLM campaign (`config`) and the paper's LLM
experiment (`design`) fix. The code that loads models, trains and samples is
`crowdsft.llm_runtime`, which nothing below the services imports."""
