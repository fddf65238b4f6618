# %% [markdown]
# # 15b. Lab: a tiny Vision Transformer
#
# This lab is being written.

# %%
import torch

print(torch.__version__)
