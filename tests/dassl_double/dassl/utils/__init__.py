from .tools import *
from .logger import *
from .meters import *
from .registry import *
from .torchtools import *
